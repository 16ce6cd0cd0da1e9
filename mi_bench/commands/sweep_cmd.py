"""``mi-bench sweep SPEC.toml``: plan, cost, run and resume a results matrix, then report it."""

from __future__ import annotations

import click

from mi_bench.commands.runtime import device_options, start
from mi_bench.errors import UserError


@click.command()
@click.argument("spec_file", metavar="SPEC.toml")
@click.option("--dry-run", is_flag=True,
              help="list the jobs, their estimated passes and time (measured here), and stop")
@click.option("--only", default=None, help="comma-separated grid names: run only these")
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, sample)")
@click.option("--no-report", is_flag=True, help="do not regenerate the reports at the end")
@click.option("--no-progress", is_flag=True)
@device_options
def sweep(spec_file, dry_run, only, data_dir, no_report, no_progress, device_spec, tf32) -> None:
    """Run every job of SPEC.toml not done yet, in order, then regenerate the reports.

    A finished job is skipped and a partial one resumes, so an interrupted sweep is rerun with
    the same command. Under ``torchrun --nproc-per-node G -m mi_bench.cli sweep SPEC.toml``
    every job's batches are spread over the G ranks.
    """
    from mi_bench.data import reuse_loaded_splits
    from mi_bench.device import resolve_device
    from mi_bench.sweep.plan import plan
    from mi_bench.sweep.run import dry_run as show_plan
    from mi_bench.sweep.run import run_jobs
    from mi_bench.sweep.spec import load_spec

    spec = load_spec(spec_file)
    resolve_device(device_spec)  # a bad --device fails before the plan's work
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    if only is not None and not names:
        raise UserError(f"--only {only!r}: expected comma-separated grid names")
    with reuse_loaded_splits():
        jobs = plan(spec, data_dir, names)  # checks every job before any runs
        device, world = start(device_spec, tf32, quiet=dry_run)
        if dry_run:
            if world.is_main:
                show_plan(spec, jobs, device, world.size, click.echo)
            return
        run_jobs(spec, jobs, data_dir, device, not no_progress,
                 lambda m: click.echo(m, err=True), report=not no_report)
