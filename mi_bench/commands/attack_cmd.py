"""``mi-bench attack``: a suite against a checkpoint and its defense, per seed and eps."""

from __future__ import annotations

import click

from mi_bench.attacks.build import PRESETS
from mi_bench.attacks.pgd import LOSSES, NORMS
from mi_bench.attacks.registry import (
    default_members,
    get_suite,
    inner_suites,
    member_names,
    suite_names,
)
from mi_bench.attacks.suites import AA_VERSIONS
from mi_bench.commands.common import (
    checkpoint_options,
    defense_options,
    defense_settings,
    parse_key_values,
    registry_choice,
)
from mi_bench.commands.runtime import device_options, start
from mi_bench.errors import UserError

FULL_TEST_SET = 10_000


@click.command()
@checkpoint_options
@defense_options
@click.option("--suite", type=registry_choice(suite_names), default="autoattack",
              show_default=True, help="; ".join(f"{e}: {get_suite(e).help}" for e in suite_names()))
@click.option("--inner-attack", type=registry_choice(inner_suites), default=None,
              help="binarization: the suite tested, run with its own settings and options")
@click.option("--binarization-preset", type=click.Choice(["official", "cpu"]), default=None,
              help="binarization: official (the MI case study: 512 samples, 999 inner + 1 "
                   "corner, MI with 15 draws at lambda 0.6) or cpu (100 samples, 199 inner + 1 "
                   "corner, 20 + 20 validation points, 3 feature draws)")
@click.option("--binarization-opt", multiple=True,
              help="binarization setting key=value: n_inner, n_boundary, boundary, gap, n_val, "
                   "feature_draws, c, threshold, alpha (repeatable; over the preset)")
@click.option("--eps", "eps_list", default="8/255", show_default=True,
              help="radius, or a comma-separated sweep such as 1/255,2/255,4/255,8/255")
@click.option("--norm", type=click.Choice(NORMS), default="Linf", show_default=True)
@click.option("--n-examples", type=click.IntRange(min=1), default=8, show_default=True,
              help="first n test images")
@click.option("--seeds", default="0", show_default=True, help="comma-separated, e.g. 0,1,2")
@click.option("--eval-repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="R: scoring draws of a randomized defense per evaluated point, the only "
                   "draws a reported number reads")
@click.option("--selection-draws", "select_repeats", type=click.IntRange(min=1), default=8,
              show_default=True,
              help="S: selection draws per evaluated point, the only draws a choice inside "
                   "the record reads (which point is kept, when a point is broken)")
@click.option("--attack-draws", "--attack-mi-samples", "attack_draws",
              type=click.IntRange(min=1), default=3, show_default=True,
              help="draws K of a randomized defense inside each attack forward (MI: partners; "
                   "evaluation keeps N)")
@click.option("--aa-version", type=click.Choice(AA_VERSIONS), default=None,
              help="[standard on deterministic models; ensemble on randomized ones: every point "
                   "attacked by every member on many draws; rand: as published]")
@click.option("--aa-attacks", default=None,
              help="custom AutoAttack list, e.g. apgd-ce,apgd-dlr; ensemble members: "
                   + ", ".join(member_names()) + " [" + ",".join(default_members()) + "]")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="steps [" + ", ".join(f"{e} {get_suite(e).default_steps}" for e in suite_names())
              + "]; APGD's iterations in the ensemble")
@click.option("--step-size", default=None, help="PGD step [eot-pgd 2.5 eps/steps; pgd/transfer eps/4, the paper's 2/255 at 8/255]")
@click.option("--loss", type=click.Choice(LOSSES), default="ce",
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
           mi_threshold, max_batch, suite, inner_attack, binarization_preset, binarization_opt,
           eps_list, norm, n_examples, seeds, eval_repeats, select_repeats,
           attack_draws, aa_version, aa_attacks, steps, step_size, loss, restarts, eot_iter,
           targeted, variant, surrogate, batch_size, data_dir, out, no_sanity, attack_preset,
           no_progress, device_spec, tf32) -> None:
    """Attack a checkpoint (optionally defended) and store one record per seed and eps.

    Under ``torchrun --nproc-per-node G -m mi_bench.cli attack ...`` the batches of each run are
    spread over the G ranks; the record is the one a single process writes.
    """
    binarization = _binarization(ctx, suite, binarization_preset, binarization_opt, defense)
    if binarization is not None:
        n_examples, mi_n, mi_lambda = (binarization.pop(k) for k in ("n", "mi_n", "mi_lambda"))
    from mi_bench.attacks.build import apply_preset, build_configs, check_surrogates
    from mi_bench.attacks.runner import AttackRun
    from mi_bench.report.summary import RunItem
    from mi_bench.results import ResultStore, check_output_dir

    given = {k for k in ("steps", "step_size", "eot_iter", "attack_draws", "loss")
             if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    # a suite that tests another (binarization) takes the preset of the suite it runs
    tuned = apply_preset(attack_preset, inner_attack if get_suite(suite).run_seed else suite,
                         given, {
        "steps": steps, "step_size": step_size, "eot_iter": eot_iter,
        "attack_draws": attack_draws, "loss": loss})
    # every option is checked before any work: a bad sweep entry must not leave half a sweep
    opts = defense_settings(defense, defense_opt, mi_n, mi_lambda, mi_pool, mi_threshold)
    configs = build_configs(
        checkpoint=checkpoint, arch=arch, arch_kwargs=parse_key_values(arch_opt, "--arch-opt"),
        defense=defense, defense_opts=opts, suite=suite, eps_list=eps_list, norm=norm,
        n_examples=n_examples, seeds=seeds, surrogate=surrogate, aa_attacks=aa_attacks,
        eval_repeats=eval_repeats, select_repeats=select_repeats, batch_size=batch_size, data_dir=data_dir,
        max_batch=max_batch, aa_version=aa_version, restarts=restarts, targeted=targeted,
        variant=variant, sanity=not no_sanity, inner_attack=inner_attack,
        binarization=(binarization or {}).get("settings", {}), **tuned)
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
        rows.append((cfg, run, records))
    own_table = get_suite(suite).summary  # a suite with a table of its own (binarization)
    if world.is_main and own_table is not None:
        click.echo(own_table([r for _, _, records in rows for r in records]))
    elif world.is_main:
        _print_summary([(cfg, run, RunItem(store, run.card.get("name"), cfg.defense, cfg.suite,
                                           cfg.surrogate, f"{cfg.eps_label} {cfg.norm}",
                                           records)) for cfg, run, records in rows], out)


def _binarization(ctx, suite: str, preset: str | None, opts, defense: str) -> dict | None:
    """The binarization test's settings: the preset's, then --binarization-opt over them; a
    preset's sample count and MI settings apply where the command line leaves them default."""
    from mi_bench.attacks.binarization import PRESETS
    from mi_bench.commands.common import split_key_values
    from mi_bench.defenses import canonical_name

    if get_suite(suite).check is None:  # only a suite that checks these settings takes them
        if preset or opts or ctx.params.get("inner_attack"):
            raise UserError("--inner-attack, --binarization-preset and --binarization-opt "
                            "apply to --suite binarization")
        return None
    p = PRESETS.get(preset or "", {"settings": {}, "mi": {}})
    default = click.core.ParameterSource.DEFAULT

    def given(name: str):
        return None if ctx.get_parameter_source(name) == default else ctx.params[name]

    mi = p["mi"] if canonical_name(defense) in ("mi-ol", "mi-pl") else {}
    return {"settings": {**p["settings"], **split_key_values(opts, "--binarization-opt",
                                                              "n_inner=199")},
            "n": given("n_examples") or p.get("n_examples", ctx.params["n_examples"]),
            "mi_n": given("mi_n") or mi.get("n_samples"),
            "mi_lambda": given("mi_lambda") or mi.get("lam")}


def _print_summary(rows, out: str) -> None:
    from mi_bench.report.summary import summary_markdown

    click.echo(summary_markdown([item for _, _, item in rows]))
    cfg, run, s = rows[-1]
    passes = s.forwards + s.backwards
    if s.seconds > 0 and passes:
        rate = passes / s.seconds
        k_full = run.defense.eval_draws() if run.defense.randomized else None
        per_image = _full_cost_per_image(run, k_full)
        total = per_image * FULL_TEST_SET * 3
        click.echo(f"\ncost paid: {s.forwards:,} forward and {s.backwards:,} backward "
                   f"base-model passes in {s.seconds:.0f} s ({rate:,.0f} passes/s); records "
                   f"in {out}/records/")
        click.echo(f"full setting ({cfg.suite}, attack draws K = {k_full or '-'}, "
                   f"{FULL_TEST_SET:,} images, 3 seeds): about {total:,.0f} passes, "
                   f"~{total / rate / 3600:,.0f} hours at this rate")


def _full_cost_per_image(run, k_full) -> int:
    suite = run.suite(run.attack_model(0), partners=k_full)
    return suite.passes_per_image() + run.eval_passes_per_image(suite)
