"""The output stage: records become rows, tables, paired gains, plots and RobustBench entries.

- ``rows.py``: records grouped into rows and cells (one image set per row), worst over attacks;
- ``gains.py``: paired per-image differences (intervals: ``mi_bench/intervals.py``);
- ``columns.py``: every table column declared once (header, CSV fields, reader, legend);
- ``tables.py``: the ranked table, the eps sweep and the files ``mi-bench report`` writes;
- ``plots.py``, ``model_info.py``: figures and RobustBench-format entries;
- ``leaderboard.py``: the RobustBench snapshot (``python -m mi_bench.report.leaderboard``).
"""

from mi_bench.report.tables import (
    Report,
    build_report,
    leaderboard_markdown,
    leaderboard_table,
    parse_formats,
    write_report,
)

__all__ = ["Report", "build_report", "leaderboard_markdown", "leaderboard_table",
           "parse_formats", "write_report"]
