"""``mi-bench attack``: a suite against a checkpoint and its defense, per seed and eps."""

from __future__ import annotations

import click

from mi_bench.commands.common import mi_options, mi_overrides, parse_eps, parse_int_list
from mi_bench.commands.runtime import device_options, start

FULL_TEST_SET = 10_000


@click.command()
@click.option("--checkpoint", default=None, help="path or shipped name [mixup]")
@mi_options
@click.option("--suite", type=click.Choice(["autoattack", "eot-pgd", "pgd", "transfer"]),
              default="autoattack", show_default=True)
@click.option("--eps", "eps_list", default="8/255", show_default=True,
              help="radius, or a comma-separated sweep such as 1/255,2/255,4/255,8/255")
@click.option("--norm", type=click.Choice(["Linf", "L2"]), default="Linf", show_default=True)
@click.option("--n-examples", type=int, default=8, show_default=True, help="first n test images")
@click.option("--seeds", default="0", show_default=True, help="comma-separated, e.g. 0,1,2")
@click.option("--eval-repeats", type=int, default=5, show_default=True,
              help="independent MI draws per evaluation")
@click.option("--attack-mi-samples", type=int, default=3, show_default=True,
              help="MI partners K inside the attack's forwards (evaluation keeps N)")
@click.option("--aa-version", type=click.Choice(["standard", "rand", "plus", "custom"]),
              default=None, help="[standard on deterministic models, rand on MI]")
@click.option("--aa-attacks", default=None, help="custom AutoAttack list, e.g. apgd-ce,apgd-dlr")
@click.option("--steps", type=int, default=None, help="PGD steps [eot-pgd 100, pgd/transfer 10]")
@click.option("--step-size", default=None, help="PGD step [eot-pgd 2.5 eps/steps; pgd/transfer eps/4, the paper's 2/255 at 8/255]")
@click.option("--loss", type=click.Choice(["ce", "dlr"]), default="ce", show_default=True)
@click.option("--restarts", type=int, default=1, show_default=True)
@click.option("--eot-iter", type=int, default=None, help="gradient samples per step [20 on MI]")
@click.option("--targeted", is_flag=True, help="pgd/transfer: toward a random other class")
@click.option("--variant", type=click.Choice(["pgd", "apgd"]), default="pgd", show_default=True)
@click.option("--surrogate", default=None, help="transfer: comma-separated surrogate checkpoints")
@click.option("--batch-size", type=int, default=50, show_default=True)
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, sample)")
@click.option("--out", default="results", show_default=True, help="result store folder")
@click.option("--no-sanity", is_flag=True, help="skip the large-eps gradient-masking check")
@click.option("--no-progress", is_flag=True)
@device_options
def attack(checkpoint, defense, mi_n, mi_lambda, mi_pool, mi_threshold, max_batch, suite,
           eps_list, norm, n_examples, seeds, eval_repeats, attack_mi_samples, aa_version,
           aa_attacks, steps, step_size, loss, restarts, eot_iter, targeted, variant, surrogate,
           batch_size, data_dir, out, no_sanity, no_progress, device_spec, tf32) -> None:
    """Attack a checkpoint (optionally defended by MI) and store one record per seed and eps.

    Under ``torchrun --nproc-per-node G -m mi_bench.cli attack ...`` the batches of each run are
    spread over the G ranks; the record is the one a single process writes.
    """
    from mi_bench.attacks.runner import AttackConfig, AttackRun, summarize_seeds
    from mi_bench.results import ResultStore

    device, world = start(device_spec, tf32)
    store = ResultStore(out)
    surrogates = surrogate.split(",") if surrogate else [None]
    rows = []
    for eps_text in [e.strip() for e in eps_list.split(",") if e.strip()]:
        for sur in surrogates:
            cfg = AttackConfig(
                checkpoint=checkpoint, defense=defense, suite=suite, eps=parse_eps(eps_text),
                eps_label=eps_text, norm=norm, n_examples=n_examples,
                seeds=parse_int_list(seeds, "--seeds"), eval_repeats=eval_repeats,
                batch_size=batch_size, data_dir=data_dir,
                mi={k: v for k, v in mi_overrides(mi_n, mi_lambda, mi_pool, mi_threshold).items()
                    if v is not None},
                attack_mi_samples=attack_mi_samples, max_batch=max_batch, aa_version=aa_version,
                aa_attacks=aa_attacks.split(",") if aa_attacks else None, steps=steps,
                step_size=parse_eps(step_size) if step_size else None, loss=loss,
                restarts=restarts, eot_iter=eot_iter, targeted=targeted, variant=variant,
                surrogate=sur, sanity=not no_sanity)
            run = AttackRun(cfg, store, progress=not no_progress,
                            log=lambda m: click.echo(m, err=True), device=device)
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
        k_full = run.mi_cfg.forwards_per_prediction() - 1 if run.mi_cfg else None
        per_image = _full_cost_per_image(run, k_full)
        total = per_image * FULL_TEST_SET * 3
        click.echo(f"\ncost paid: {s['forwards']:,} forward and {s['backwards']:,} backward "
                   f"base-model passes in {s['seconds']:.0f} s ({rate:,.0f} passes/s); records "
                   f"in {out}/records/")
        click.echo(f"full setting ({cfg.suite}, attack partners K = {k_full or '-'}, "
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
