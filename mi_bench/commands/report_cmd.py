"""``mi-bench leaderboard``, ``mi-bench report`` and ``mi-bench migrate``: the baseline, our
results among it, and the carrying of old records to the current protocol."""

from __future__ import annotations

import click


@click.command()
@click.option("--dataset", type=click.Choice(["cifar10", "cifar100"]), default="cifar10",
              show_default=True)
@click.option("--threat", type=click.Choice(["Linf", "L2"]), default="Linf", show_default=True)
@click.option("--top", type=int, default=None, help="only the first N rows (after filtering)")
@click.option("--filter", "text", default=None,
              help="case-insensitive substring of model_id, paper or architecture")
@click.option("--no-extra-data", is_flag=True, help="drop entries trained with extra data")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md",
              show_default=True)
def leaderboard(dataset: str, threat: str, top: int | None, text: str | None,
                no_extra_data: bool, fmt: str) -> None:
    """Print the committed RobustBench snapshot (ranks count reliable entries only)."""
    from mi_bench.report import leaderboard_markdown, leaderboard_table

    board = leaderboard_table(dataset, threat, top=top, text=text, extra_data=not no_extra_data)
    if board.empty:
        click.echo(f"no {dataset} {threat} entries match", err=True)
        return
    if fmt == "csv":
        click.echo(board.to_csv(index=False, na_rep="—", lineterminator="\n"), nl=False)
    else:
        click.echo(leaderboard_markdown(board))


@click.command()
@click.option("--results", default="results", show_default=True, help="result store folder")
@click.option("--baseline", default="robustbench:cifar10:Linf", show_default=True,
              help="robustbench:DATASET:THREAT to rank against")
@click.option("--format", "formats", default="md,csv", show_default=True,
              help="comma-separated: md, csv, html (one self-contained page)")
@click.option("--out", default="report", show_default=True, help="output folder")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="write PNG plots under OUT/plots")
def report(results: str, baseline: str, formats: str, out: str, plots: bool) -> None:
    """Rank every evaluated checkpoint + defense among the RobustBench entries."""
    from mi_bench.report import build_report, parse_formats, write_report

    fmts = parse_formats(formats)
    rep = build_report(results, baseline)
    written = write_report(rep, out, fmts, plots=plots)
    click.echo(f"{rep.n_records} records in {results}; baseline RobustBench {rep.dataset} "
               f"{rep.threat} ({rep.board_size} entries); headline eps {rep.headline_label}")
    mine = rep.ranked_md[rep.ranked_md["source"] == "**mi-bench**"]
    click.echo(mine.to_markdown(index=False, disable_numparse=True) if len(mine)
               else f"no rows at eps {rep.headline_label} {rep.threat} for {rep.dataset}")
    for line in rep.missing + rep.unranked:
        click.echo(line)
    for note in written.notes + written.removed:
        click.echo(note)
    for path in written.files:
        click.echo(f"wrote {path}")


@click.command()
@click.argument("store")
@click.option("--archive", default=None,
              help="move the records that must be regenerated (randomized defenses) here")
def migrate(store: str, archive: str | None) -> None:
    """Carry a store's deterministic protocol-2 records to protocol 3 (their numbers do not
    change); records of randomized defenses must be regenerated."""
    from mi_bench.attacks.migrate import migrate_store

    upgraded, stale = migrate_store(store, archive, log=click.echo)
    click.echo(f"{upgraded} deterministic record(s) carried over; {stale} record(s) of "
               "randomized defenses to regenerate" + (f", moved to {archive}" if archive and
                                                       stale else ""))
