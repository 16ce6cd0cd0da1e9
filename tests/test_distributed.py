"""torchrun spreads one run's batches over ranks (gloo on CPU); the record is a single process's.

Every run here is a real ``python -m torch.distributed.run`` (torchrun) with 2 ranks, compared
with a single process in another store. Threads are pinned to 1 everywhere (torchrun's own
default for several ranks), so that both sides do the same arithmetic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mi_bench.distributed import World
from mi_bench.results import ResultStore

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="finds rank processes in /proc")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "mi_bench.cli"]
SINGLE = [sys.executable, "-m", "mi_bench.cli"]
# facts about one execution, not results: when, how long, with which package versions
EXECUTION_FIELDS = ("created", "seconds", "versions")


def cli_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MI_BENCH_DATA", None)  # the embedded sample
    return env


def comparable(store: ResultStore) -> list[tuple[dict, dict]]:
    """Every record without its execution facts, with its per-example arrays, by key."""
    out = []
    for rec in sorted(store.records(), key=lambda r: r["key"]):
        out.append(({k: v for k, v in rec.items() if k not in EXECUTION_FIELDS},
                    store.load_examples(rec["key"])))
    return out


def assert_same_records(a: Path, b: Path) -> None:
    ra, rb = comparable(ResultStore(a)), comparable(ResultStore(b))
    assert [r["key"] for r, _ in ra] == [r["key"] for r, _ in rb] and ra
    for (rec_a, ex_a), (rec_b, ex_b) in zip(ra, rb):
        assert rec_a == rec_b
        assert ex_a.keys() == ex_b.keys()
        for k in ex_a:
            assert np.array_equal(ex_a[k], ex_b[k], equal_nan=ex_a[k].dtype.kind == "f"), k


def rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the worker processes torchrun started (its children that carry RANK)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != launcher:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = int(stat.parent.name)
    return out


def test_world_owns_a_round_robin_share_of_the_batches():
    worlds = [World(r, 3) for r in range(3)]
    owners = [[w.rank for w in worlds if w.owns(b)] for b in range(8)]
    assert owners == [[0], [1], [2], [0], [1], [2], [0], [1]]
    assert World().owns(5) and World().is_main and World().label() == ""
    World().barrier()  # a single process never waits


def test_a_rank_killed_mid_run_resumes_to_the_single_process_record(tmp_path, tiny_checkpoint):
    args = ["attack", "--checkpoint", str(tiny_checkpoint), "--suite", "eot-pgd", "--steps", "40",
            "--eot-iter", "4", "--attack-mi-samples", "4", "--mi-n", "4", "--n-examples", "12",
            "--batch-size", "2", "--eval-repeats", "2", "--no-sanity", "--no-progress",
            "--device", "cpu"]
    env, killed = cli_env(), tmp_path / "killed"
    proc = subprocess.Popen(TORCHRUN + args + ["--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, victim, partial = time.time() + 300, None, []
    while time.time() < deadline and proc.poll() is None:
        partial = list(killed.glob("partial/*/*.npz"))
        pids = rank_pids(proc.pid)
        if len(partial) >= 2 and 1 in pids:
            victim = pids[1]
            os.kill(victim, signal.SIGKILL)  # rank 1 dies mid-run; torchrun stops rank 0
            break
        time.sleep(0.05)
    err = proc.communicate(timeout=120)[1]
    assert victim is not None, f"the run ended before rank 1 could be killed: {err[-2000:]}"
    assert proc.returncode != 0
    left = list(killed.glob("partial/*/*.npz"))
    assert not list(killed.glob("records/*.json")) and 2 <= len(left) < 6
    assert not list(killed.glob("**/*.tmp")), "a killed rank left a half-written file"

    rerun = subprocess.run(TORCHRUN + args + ["--out", str(killed)], env=env,
                           capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming after {len(left)}/6 batches" in rerun.stderr
    single = subprocess.run(SINGLE + args + ["--out", str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, check=False)
    assert single.returncode == 0, single.stderr[-3000:]
    assert_same_records(killed, tmp_path / "single")
    assert not list(killed.glob("partial/*/*.npz"))
    # the summary table is printed once, by rank 0
    assert rerun.stdout.count("| model") == 1


def test_train_under_torchrun_uses_ddp(tmp_path, sample_train, sample_test):
    data = tmp_path / "data" / "cifar10"
    data.mkdir(parents=True)
    for name, split, n in (("train", sample_train, 200), ("test", sample_test, 50)):
        np.savez(data / f"{name}.npz", images=split.images[:n].permute(0, 2, 3, 1).numpy(),
                 labels=split.labels[:n].numpy())
    out = tmp_path / "ddp.pt"
    done = subprocess.run(
        TORCHRUN + ["train", "--method", "mixup", "--arch", "small-cnn", "--arch-opt", "width=8",
                    "--epochs", "1", "--batch-size", "50", "--data-dir", str(tmp_path / "data"),
                    "--device", "cpu", "--out", str(out), "--no-progress"],
        env=cli_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    from mi_bench.models.checkpoint import load_checkpoint

    _model, card = load_checkpoint(out)
    assert card["world_size"] == 2 and card["epochs"] == 1
    assert 0 <= card["history"][0]["train_acc"] <= 1 and card["clean_acc_n"] == 50
    assert done.stdout.count("clean accuracy") == 1  # one rank reports
    odd = subprocess.run(
        TORCHRUN + ["train", "--arch", "small-cnn", "--batch-size", "51", "--device", "cpu",
                    "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "odd.pt")],
        env=cli_env(), capture_output=True, text=True, check=False)
    assert odd.returncode != 0 and "does not split over 2 ranks" in odd.stderr


SWEEP = """
[sweep]
plots = false

[stores.main]
path = "store"

[defaults]
eval_repeats = 2
batch_size = 4
mi_n = 4
n = [12]
eps = ["8/255"]
checkpoints = ["{ckpt}"]

[[grid]]
name = "oblivious"
defenses = ["mi-ol"]
suites = ["pgd"]
steps = 3

[[grid]]
name = "adaptive"
defenses = ["mi-ol"]
suites = ["eot-pgd", "autoattack"]
steps = 3
eot_iter = 2
attack_mi_samples = 1
seeds = [0, 1]
"""


def test_two_rank_sweep_writes_the_single_process_records(tmp_path, tiny_checkpoint):
    """Sanity checks, the large-eps masking check and AutoAttack included."""
    for name in ("ranks", "single"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.toml").write_text(SWEEP.replace("{ckpt}", str(tiny_checkpoint)))
    two = subprocess.run(TORCHRUN + ["sweep", str(tmp_path / "ranks" / "spec.toml"),
                                     "--device", "cpu", "--no-progress"],
                         env=cli_env(), capture_output=True, text=True, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(SINGLE + ["sweep", str(tmp_path / "single" / "spec.toml"),
                                   "--device", "cpu", "--no-progress"],
                         env=cli_env(), capture_output=True, text=True, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    assert len(ResultStore(tmp_path / "ranks" / "store").records()) == 5
    assert_same_records(tmp_path / "ranks" / "store", tmp_path / "single" / "store")
    rec = ResultStore(tmp_path / "ranks" / "store").records()[0]
    assert "large_eps" in rec["flags"] and "randomized" in rec["flags"]
    assert two.stderr.count("5 jobs run") == 1  # rank 0 speaks for the sweep
