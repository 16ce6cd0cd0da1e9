"""``mi-bench attack``: a suite against a checkpoint and its defense, per seed and eps."""

from __future__ import annotations

import click

from mi_bench.attacks.build import PRESETS
from mi_bench.commands.common import (
    checkpoint_options,
    defense_options,
    defense_settings,
    parse_key_values,
)
from mi_bench.commands.runtime import device_options, start

FULL_TEST_SET = 10_000


@click.command()
@checkpoint_options
@defense_options
@click.option("--suite", type=click.Choice(["autoattack", "eot-pgd", "pgd", "transfer"]),
              default="autoattack", show_default=True)
@click.option("--eps", "eps_list", default="8/255", show_default=True,
              help="radius, or a comma-separated sweep such as 1/255,2/255,4/255,8/255")
@click.option("--norm", type=click.Choice(["Linf", "L2"]), default="Linf", show_default=True)
@click.option("--n-examples", type=click.IntRange(min=1), default=8, show_default=True,
              help="first n test images")
@click.option("--seeds", default="0", show_default=True, help="comma-separated, e.g. 0,1,2")
@click.option("--eval-repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="independent draws of a randomized defense per evaluation")
@click.option("--attack-draws", "--attack-mi-samples", "attack_draws",
              type=click.IntRange(min=1), default=3, show_default=True,
              help="draws K of a randomized defense inside each attack forward (MI: partners; "
                   "evaluation keeps N)")
@click.option("--aa-version", type=click.Choice(["standard", "rand", "plus", "custom",
                                                 "ensemble"]), default=None,
              help="[standard on deterministic models; ensemble on randomized ones: every point "
                   "attacked by every member on many draws; rand: as published]")
@click.option("--aa-attacks", default=None,
              help="custom AutoAttack list, e.g. apgd-ce,apgd-dlr; ensemble members: apgd-ce, "
                   "apgd-dlr, apgd-t, eot-pgd-ce, eot-pgd-margin")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="PGD steps [eot-pgd 100, pgd/transfer 10]; the ensemble's iterations [100]")
@click.option("--step-size", default=None, help="PGD step [eot-pgd 2.5 eps/steps; pgd/transfer eps/4, the paper's 2/255 at 8/255]")
@click.option("--loss", type=click.Choice(["ce", "dlr", "margin"]), default="ce",
              show_default=True, help="PGD loss; margin: best other minus true output")
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--eot-iter", type=click.IntRange(min=1), default=None,
              help="gradient samples per step [20 on randomized defenses]")
@click.option("--targeted", is_flag=True, help="pgd/transfer: toward a random other class")
@click.option("--variant", type=click.Choice(["pgd", "apgd"]), default="pgd", show_default=True)
@click.option("--surrogate", default=None, help="transfer: comma-separated surrogate checkpoints")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, sample)")
@click.option("--out", default="results", show_default=True, help="result store folder")
@click.option("--no-sanity", is_flag=True, help="skip the large-eps gradient-masking check")
@click.option("--attack-preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="eot-pgd: a published adaptive attack's settings (tramer: Tramer et al. "
                   "2020 on MI, PGD-50, step 0.5/255, K = 15 partners, no EOT)")
@click.option("--no-progress", is_flag=True)
@device_options
@click.pass_context
def attack(ctx, checkpoint, arch, arch_opt, defense, defense_opt, mi_n, mi_lambda, mi_pool,
           mi_threshold, max_batch, suite, eps_list, norm, n_examples, seeds, eval_repeats,
           attack_draws, aa_version, aa_attacks, steps, step_size, loss, restarts, eot_iter,
           targeted, variant, surrogate, batch_size, data_dir, out, no_sanity, attack_preset,
           no_progress, device_spec, tf32) -> None:
    """Attack a checkpoint (optionally defended) and store one record per seed and eps.

    Under ``torchrun --nproc-per-node G -m mi_bench.cli attack ...`` the batches of each run are
    spread over the G ranks; the record is the one a single process writes.
    """
    from mi_bench.attacks.build import apply_preset, build_configs, check_surrogates
    from mi_bench.attacks.runner import AttackRun, summarize_seeds
    from mi_bench.results import ResultStore, check_output_dir

    given = {k for k in ("steps", "step_size", "eot_iter", "attack_draws", "loss")
             if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    tuned = apply_preset(attack_preset, suite, given, {
        "steps": steps, "step_size": step_size, "eot_iter": eot_iter,
        "attack_draws": attack_draws, "loss": loss})
    # every option is checked before any work: a bad sweep entry must not leave half a sweep
    opts = defense_settings(defense, defense_opt, mi_n, mi_lambda, mi_pool, mi_threshold)
    configs = build_configs(
        checkpoint=checkpoint, arch=arch, arch_kwargs=parse_key_values(arch_opt, "--arch-opt"),
        defense=defense, defense_opts=opts, suite=suite, eps_list=eps_list, norm=norm,
        n_examples=n_examples, seeds=seeds, surrogate=surrogate, aa_attacks=aa_attacks,
        eval_repeats=eval_repeats, batch_size=batch_size, data_dir=data_dir,
        max_batch=max_batch, aa_version=aa_version, restarts=restarts, targeted=targeted,
        variant=variant, sanity=not no_sanity, **tuned)
    check_surrogates(configs)
    device, world = start(device_spec, tf32)
    store = ResultStore(out)
    store.check()  # damaged records fail now, not after the attack

    def log(message: str) -> None:
        click.echo(message, err=True)

    # the first run loads the checkpoint, data and defense (their errors come before any file
    # is written); the others differ only in the eps and surrogate checked above
    first = AttackRun(configs[0], store, progress=not no_progress, log=log, device=device)
    check_output_dir(out, "--out")
    rows = []
    for cfg in configs:
        run = first if cfg is configs[0] else AttackRun(cfg, store, not no_progress, log,
                                                        device=device)
        records = [run.run_seed(s) for s in cfg.seeds]
        rows.append((cfg, run, records, summarize_seeds(store, records)))
    if world.is_main:
        _print_summary(rows, out)


def _print_summary(rows, out: str) -> None:
    import pandas as pd

    table = []
    for cfg, run, records, s in rows:
        table.append({
            "model": run.card.get("name"), "defense": cfg.defense, "suite": cfg.suite
            + (f" from {cfg.surrogate}" if cfg.surrogate else ""),
            "eps": f"{cfg.eps_label} {cfg.norm}", "n": cfg.n_examples, "seeds": len(records),
            "clean": f"{s['clean_mean']:.1%}",
            "robust (mean ± std)": f"{s['robust_mean']:.1%}" + (
                f" ± {s['robust_std']:.1%}" if len(records) > 1 else " (1 seed)"),
            "worst case": f"{s['robust_worst_over_seeds']:.1%}",
            "passes": f"{s['forwards']:,}", "seconds": f"{s['seconds']:.0f}",
            "flags": _flags(records),
        })
    click.echo(pd.DataFrame(table).to_markdown(index=False))
    cfg, run, records, s = rows[-1]
    passes = s["forwards"] + s["backwards"]
    if s["seconds"] > 0 and passes:
        rate = passes / s["seconds"]
        k_full = run.defense.eval_draws() if run.defense.randomized else None
        per_image = _full_cost_per_image(run, k_full)
        total = per_image * FULL_TEST_SET * 3
        click.echo(f"\ncost paid: {s['forwards']:,} forward and {s['backwards']:,} backward "
                   f"base-model passes in {s['seconds']:.0f} s ({rate:,.0f} passes/s); records "
                   f"in {out}/records/")
        click.echo(f"full setting ({cfg.suite}, attack draws K = {k_full or '-'}, "
                   f"{FULL_TEST_SET:,} images, 3 seeds): about {total:,.0f} passes, "
                   f"~{total / rate / 3600:,.0f} hours at this rate")


def _full_cost_per_image(run, k_full) -> int:
    suite = run.suite(run.attack_model(0), partners=k_full)
    return suite.passes_per_image() + run.eval_passes_per_image()


def _flags(records) -> str:
    out = set()
    for r in records:
        f = r.get("flags", {})
        if f.get("large_eps", {}).get("masked"):
            out.add("masking?")
        if f.get("weaker_attack_stronger"):
            out.add("non-monotone")
        if f.get("autoattack_randomness_check"):
            out.add("randomized")
        if f.get("zero_grad_fraction", 0) > 0:
            out.add("zero-grad")
    return ", ".join(sorted(out)) or "-"
