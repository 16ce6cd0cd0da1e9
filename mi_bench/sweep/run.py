"""Running a planned sweep: the job list and its cost (dry run), or the jobs and then the report.

Jobs run in the plan's order. A finished job is skipped (its record exists), a partial one
resumes at its first missing batch, so an interrupted sweep is rerun with the same command.
Under torchrun every rank walks the same list and each job's batches are spread over the ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import torch

from mi_bench import distributed
from mi_bench.attacks.runner import AttackRun
from mi_bench.device import describe
from mi_bench.errors import UserError
from mi_bench.results import ResultStore
from mi_bench.sweep.cost import Rate, calibrate, hours, job_seconds
from mi_bench.sweep.plan import Cell, Job
from mi_bench.sweep.spec import Spec


def job_table(jobs: list[Job], rates: dict[str, Rate]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        s = j.cell.settings
        secs = job_seconds(j.attack_passes, j.eval_passes, rates[j.attack_model],
                           rates[s["checkpoint"]])
        rows.append({
            "#": j.number, "grid": j.cell.grid, "store": j.cell.store.name,
            "checkpoint": s["checkpoint"], "defense": s["defense"],
            "suite": s["suite"] + (f" from {s['surrogate']}" if s.get("surrogate") else ""),
            "eps": s["eps"][0], "n": s["n"], "seed": j.seed,
            "settings": " ".join(f"{k}={v}" for k, v in j.cell.varied.items()) or "-",
            "record": j.key, "status": j.status if j.status != "partial"
            else f"partial {j.batches_done}/{j.batches}",
            "passes": j.passes, "est. time": hours(secs),
            "_seconds_left": secs * j.remaining(), "_passes_left": j.passes * j.remaining()})
    return pd.DataFrame(rows)


def dry_run(spec: Spec, jobs: list[Job], device: torch.device, world_size: int,
            echo: Callable[[str], None]) -> pd.DataFrame:
    """Print the job list, each job's estimated passes and time, and the totals."""
    models = sorted({j.attack_model for j in jobs} | {j.cell.settings["checkpoint"] for j in jobs})
    rates = {m: calibrate(m, device) for m in models}
    table = job_table(jobs, rates)
    shown = table.drop(columns=["_seconds_left", "_passes_left"]).assign(
        passes=table["passes"].map("{:,}".format))
    echo(shown.to_markdown(index=False, disable_numparse=True))
    echo("")
    echo(f"calibration on {describe(device)}: " + "; ".join(
        f"{m} {r.backward:,.0f} fwd+bwd and {r.forward:,.0f} fwd passes/s"
        for m, r in rates.items()))
    counts = table["status"].str.split().str[0].value_counts()
    left_s, left_p = table["_seconds_left"].sum(), table["_passes_left"].sum()
    echo(f"{len(jobs)} jobs ({counts.get('done', 0)} done, {counts.get('partial', 0)} partial, "
         f"{counts.get('todo', 0)} to run); {int(table['passes'].sum()):,} base-model passes in "
         f"all, {left_p:,.0f} still to run: about {hours(left_s)} on this device"
         + (f", {hours(left_s / world_size)} over {world_size} ranks" if world_size > 1 else "")
         + " (every attack run to its end; MI's mixing not counted)")
    return table


def run_jobs(spec: Spec, jobs: list[Job], data_dir: str | None, device: torch.device,
             progress: bool, echo: Callable[[str], None], report: bool = True) -> dict:
    """Run every job not done yet, in order; then regenerate the reports (rank 0)."""
    world = distributed.world()
    say = echo if world.is_main else (lambda m: None)
    cells: list[tuple[Cell, list[Job]]] = []
    for job in jobs:
        if cells and cells[-1][0] is job.cell:
            cells[-1][1].append(job)
        else:
            cells.append((job.cell, [job]))
    t0, ran, skipped = time.time(), 0, 0
    for cell, cell_jobs in cells:
        span = f"[{cell_jobs[0].number}/{len(jobs)}]" if len(cell_jobs) == 1 else \
            f"[{cell_jobs[0].number}-{cell_jobs[-1].number}/{len(jobs)}]"
        todo = [j for j in cell_jobs if j.status != "done"]
        if not todo:
            say(f"{span} {cell.label()}: done, skipped")
            skipped += len(cell_jobs)
            continue
        say(f"{span} {cell.label()}: {len(todo)} of {len(cell_jobs)} seeds to run")
        run = AttackRun(cell.config(data_dir), ResultStore(cell.store.path), progress=progress,
                        log=say, device=device)
        for job in todo:
            run.run_seed(job.seed)
            ran += 1
        skipped += len(cell_jobs) - len(todo)
        del run
    written = write_reports(spec, jobs, say) if world.is_main and report else []
    say(f"sweep {spec.path}: {ran} jobs run, {skipped} already done, {time.time() - t0:.0f} s")
    return {"ran": ran, "skipped": skipped, "reports": written}


def write_reports(spec: Spec, jobs: list[Job], say: Callable[[str], None]) -> list[str]:
    """The report of every store the jobs used that names a report folder."""
    from mi_bench.report import build_report, write_report

    used = {j.cell.store.name for j in jobs}
    files = []
    for store in spec.stores.values():
        if store.name not in used or store.report is None:
            continue
        try:
            rep = build_report(store.path, spec.baseline)
        except UserError as exc:
            say(f"report for {store.path} not written: {exc}")
            continue
        written = write_report(rep, store.report, ("md", "csv", "html"), plots=spec.plots)
        files += [str(p) for p in written.files]
        say(f"report: {store.report} ({rep.n_records} records in {store.path})")
    return files
