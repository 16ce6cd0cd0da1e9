"""Sweeps: a TOML spec of checkpoints x defenses x suites x eps x seeds x n, planned, costed,
run (and resumed) job by job, on one process or under torchrun, ending with the report.

- ``spec.py``: reading and checking the spec;
- ``plan.py``: the job list in its order, with record keys, status and passes;
- ``cost.py``: calibration and time estimates;
- ``run.py``: the dry run, the run, the reports.
"""
