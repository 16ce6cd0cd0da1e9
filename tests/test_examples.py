"""The examples run, on the embedded sample with small n, and do what their docstrings say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def run_example(args: list[str], cwd: Path) -> str:
    """Run in a fresh folder without MI_BENCH_DATA (the autouse fixture removed it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "embedded CIFAR-10 sample" in proc.stderr  # CI runs them on the sample
    return proc.stdout


def test_own_defense_and_the_cli_share_its_records(tmp_path):
    out = run_example([str(EXAMPLES / "own_defense.py"), "8"], tmp_path)
    assert re.search(r"\| RandomResizePad \(pad=4, draws=4\) \| 8/255 \| 8 ", out), out
    keys = re.search(r"'pgd': \['([0-9a-f]{16})'\]", out).group(1)
    cli = run_example(["-m", "mi_bench.cli", "attack", "--checkpoint", "mixup", "--defense",
                       f"{EXAMPLES / 'own_defense.py'}:RandomResizePad", "--defense-opt",
                       "pad=4", "--suite", "pgd", "--n-examples", "8", "--no-progress"],
                      tmp_path)
    assert cli
    assert (tmp_path / "results" / "records" / f"{keys}.json").is_file()
    assert len(list((tmp_path / "results" / "records").glob("*.json"))) == 2  # pgd, eot-pgd


def test_own_model(tmp_path):
    out = run_example([str(EXAMPLES / "own_model.py"), "8"], tmp_path)
    assert re.search(r"\| my-cnn +\| mi-ol \(λ=0.5\) \| 8/255 \| 8 ", out), out


def test_notebook_writes_its_plot(tmp_path):
    out = run_example([str(EXAMPLES / "notebook.py"), "8"], tmp_path)
    png = tmp_path / "mi_eps.png"
    assert "wrote mi_eps.png" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.count("| prn18w16-mixup-s0 | mi-ol") == 3  # one row per eps
