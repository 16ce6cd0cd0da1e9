"""``mi-bench sweep``: a spec's jobs and costs, bad specs, interruption and resume, the CLI's keys."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import real_data_dir
from test_distributed import assert_same_records

from mi_bench.cli import main
from mi_bench.results import ResultStore
from mi_bench.sweep.plan import plan
from mi_bench.sweep.spec import load_spec

SPEC = """
[sweep]
plots = false

[stores.main]
path = "store"
report = "report"

[defaults]
eval_repeats = 2
batch_size = 4
mi_n = 4
sanity = false

[suite.eot-pgd]
steps = 2
eot_iter = 2
attack_mi_samples = [1, 2]

[[grid]]
name = "oblivious"
checkpoints = ["{ckpt}"]
defenses = ["none", "mi-ol"]
suites = ["pgd"]
eps = ["4/255", "8/255"]
n = [8]
seeds = [0, 1]
steps = 2

[[grid]]
name = "adaptive"
checkpoints = ["{ckpt}"]
defenses = ["mi-ol"]
suites = ["eot-pgd"]
eps = ["8/255"]
n = 8
"""


def write_spec(folder: Path, ckpt: Path, text: str = SPEC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.toml"
    path.write_text(text.replace("{ckpt}", str(ckpt)))
    return path


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mi-bench", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def expected_passes() -> list[int]:
    """By hand: n = 8 images x (attack passes + evaluation passes) per image."""
    # one point: S = 8 selection and R = 2 scoring draws of N + 1 forwards (MI), or 1 forward
    none_eval, mi_eval = 1, (8 + 2) * (4 + 1)
    pgd = 2  # 2 steps on the base model, one gradient each
    eot = [2 * 2 * (1 + k) for k in (1, 2)]  # 2 steps x EOT 2 through MI with K partners
    # the clean draws depend on (defense, seed), not on eps or the attack: the first job of
    # each (defense, seed) pays for them, and the rest read them from the cache
    return ([8 * (pgd + 2 * none_eval)] * 2 + [8 * (pgd + none_eval)] * 2
            + [8 * (pgd + 2 * mi_eval)] * 2 + [8 * (pgd + mi_eval)] * 2
            + [8 * (e + mi_eval) for e in eot])


def test_dry_run_lists_jobs_in_order_with_costs(monkeypatch, capsys, tmp_path, tiny_checkpoint):
    spec = write_spec(tmp_path, tiny_checkpoint)
    code, out, err = cli(monkeypatch, capsys, "sweep", str(spec), "--dry-run", "--device", "cpu")
    assert code == 0, err
    rows = [ln.split("|")[1:-1] for ln in out.splitlines() if re.match(r"\| \d+ ", ln)]
    cols = [[c.strip() for c in r] for r in rows]
    # grids as written; checkpoints x defenses x suites x eps x n x settings, seeds last
    order = [(c[1], c[4], c[5], c[6], c[8], c[9]) for c in cols]
    assert order == [
        ("oblivious", "none", "pgd", "4/255", "0", "-"), ("oblivious", "none", "pgd", "4/255", "1", "-"),
        ("oblivious", "none", "pgd", "8/255", "0", "-"), ("oblivious", "none", "pgd", "8/255", "1", "-"),
        ("oblivious", "mi-ol", "pgd", "4/255", "0", "-"), ("oblivious", "mi-ol", "pgd", "4/255", "1", "-"),
        ("oblivious", "mi-ol", "pgd", "8/255", "0", "-"), ("oblivious", "mi-ol", "pgd", "8/255", "1", "-"),
        ("adaptive", "mi-ol", "eot-pgd", "8/255", "0", "attack_mi_samples=1"),
        ("adaptive", "mi-ol", "eot-pgd", "8/255", "0", "attack_mi_samples=2")]
    passes = [int(c[12].replace(",", "")) for c in cols]
    assert passes == expected_passes()
    assert all(c[11] == "todo" for c in cols)
    assert f"10 jobs (0 done, 0 partial, 10 to run); {sum(expected_passes()):,} base-model" in out
    assert re.search(r"calibration on cpu: \S+ [\d,]+ fwd\+bwd and [\d,]+ fwd passes/s", out)
    assert not (tmp_path / "store").exists()  # a dry run writes nothing


def comparable_dir(folder: Path) -> Path:
    return folder / "store"


def test_interrupted_sweep_resumes_to_the_uninterrupted_records(monkeypatch, capsys, tmp_path,
                                                                tiny_checkpoint):
    straight = write_spec(tmp_path / "straight", tiny_checkpoint)
    code, _, err = cli(monkeypatch, capsys, "sweep", str(straight), "--no-progress")
    assert code == 0, err
    assert (tmp_path / "straight" / "report" / "report.md").is_file()  # the report, regenerated

    broken = write_spec(tmp_path / "broken", tiny_checkpoint)
    saves = []
    original = ResultStore.save_batch

    def save_then_stop(self, key, index, arrays):
        original(self, key, index, arrays)
        saves.append(key)
        if len(saves) == 11:  # mid-job: the 6th job has one of its 2 batches
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultStore, "save_batch", save_then_stop)
    code, _, err = cli(monkeypatch, capsys, "sweep", str(broken), "--no-progress")
    assert code == 130, err  # interrupted (Ctrl-C)
    monkeypatch.setattr(ResultStore, "save_batch", original)
    assert len(ResultStore(tmp_path / "broken" / "store").records()) == 5
    code, out, _ = cli(monkeypatch, capsys, "sweep", str(broken), "--dry-run")
    assert "5 jobs" not in out and "10 jobs (5 done, 1 partial, 4 to run)" in out
    code, _, err = cli(monkeypatch, capsys, "sweep", str(broken), "--no-progress")
    assert code == 0, err
    assert "done, skipped" in err and "resuming after 1/2 batches" in err
    assert "5 jobs run, 5 already done" in err
    assert_same_records(comparable_dir(tmp_path / "broken"), comparable_dir(tmp_path / "straight"))


def test_a_sweep_job_is_the_attack_commands_record(monkeypatch, capsys, tmp_path, tiny_checkpoint):
    store = tmp_path / "store"
    code, _, err = cli(monkeypatch, capsys, "attack", "--checkpoint", str(tiny_checkpoint),
                       "--suite", "eot-pgd", "--steps", "2", "--eot-iter", "2", "--mi-n", "4",
                       "--eval-repeats", "2", "--batch-size", "4", "--no-sanity", "--no-progress",
                       "--attack-mi-samples", "2", "--out", str(store))
    assert code == 0, err
    spec = load_spec(write_spec(tmp_path, tiny_checkpoint))
    jobs = plan(spec, only=["adaptive"])
    (record,) = ResultStore(store).records()
    assert [j.status for j in jobs] == ["todo", "done"] and jobs[1].key == record["key"]


BAD = [
    ("[[grid]]\nname = 'g'\n", None, "no [stores.NAME] table"),
    ("[stores.main]\npath = 's'\n", None, "no [[grid]]: nothing to run"),
    (None, ("[sweep]", "colour = 1\n[sweep]"), "spec.toml: unknown key 'colour'"),
    (None, ("[suite.eot-pgd]", "[suite.fgsm]\nsteps = 1\n[suite.eot-pgd]"),
     "[suite]: unknown key 'fgsm'"),
    (None, ("plots = false", "plots = 'no'"), "[sweep]: plots: expected true or false"),
    (None, ("seeds = [0, 1]\nsteps = 2", "seeds = [0, 1]\nstpes = 2"),
     "[[grid]] 'oblivious': unknown key 'stpes'"),
    (None, ('checkpoints = ["{ckpt}"]\ndefenses = ["none", "mi-ol"]',
            'checkpoints = ["no-such-model"]\ndefenses = ["none", "mi-ol"]'),
     ("[[grid]] 'oblivious': checkpoints = 'no-such-model': checkpoint 'no-such-model' is "
      "neither a file nor a shipped checkpoint")),
    (None, ('suites = ["pgd"]', 'suites = ["transfer"]\nsurrogates = ["nope"]'),
     "[[grid]] 'oblivious': surrogates = 'nope': checkpoint 'nope' is neither"),
    (None, ('eps = ["4/255", "8/255"]', 'eps = ["4/255", "300/255"]'),
     "eps = '300/255' is out of range for Linf"),
    (None, ('eps = ["4/255", "8/255"]', 'eps = ["4/255", "-1/255"]'),
     "eps = '-1/255': eps must be non-negative"),
    (None, ('defenses = ["none", "mi-ol"]', "defenses = []"), "defenses is empty"),
    (None, ("n = [8]", 'n = ["8"]'), "n = '8': expected an integer >= 1"),
    (None, ("n = [8]\n", ""), "missing key 'n'"),
    (None, ('suites = ["pgd"]', 'suites = ["transfer"]'), "suite transfer needs surrogates"),
    (None, ("n = 8\n", "n = 8\nstore = 'other'\n"), "store 'other' is not one of the [stores]"),
    (None, ("[[grid]]", "[[grid]\n"), "not valid TOML"),
]


@pytest.mark.parametrize("text,swap,message", BAD)
def test_bad_specs_fail_before_any_work_with_one_line(monkeypatch, capsys, tmp_path,
                                                      tiny_checkpoint, text, swap, message):
    if text is None:
        old, new = swap
        assert old in SPEC
        text = SPEC.replace(old, new, 1)
    spec = write_spec(tmp_path, tiny_checkpoint, text)
    code, _out, err = cli(monkeypatch, capsys, "sweep", str(spec))
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]  # nothing written


def test_unknown_only_grid_and_missing_spec(monkeypatch, capsys, tmp_path, tiny_checkpoint):
    spec = write_spec(tmp_path, tiny_checkpoint)
    code, _, err = cli(monkeypatch, capsys, "sweep", str(spec), "--only", "oblivous")
    assert code == 2 and "--only oblivous: no such grid" in err and "oblivious, adaptive" in err
    code, _, err = cli(monkeypatch, capsys, "sweep", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in err


def test_the_committed_results_spec_is_valid():
    spec = load_spec(Path(__file__).resolve().parents[1] / "leaderboards" / "sweep.toml")
    assert [s.name for s in spec.stores.values()] == ["main"]
    names = [g.name for g in spec.grids]
    assert names[0] == "comparison-oblivious" and names[-1] == "convergence-restarts"
    # every defense of the comparison is in every suite's grid: one image set, every column
    defenses = {d for g in spec.grids for d in g.values["defenses"]}
    assert defenses == {"none", "mi-ol", "gaussian-noise", "uniform-noise", "rotation", "xie",
                        "guo"}
    jobs = plan(spec)
    assert len(jobs) == 105 and {j.cell.settings["n"] for j in jobs} == {100}


def test_the_headline_spec_keeps_one_image_set_per_eps():
    spec = load_spec(Path(__file__).resolve().parents[1] / "leaderboards" / "headline.toml")
    assert [s.name for s in spec.stores.values()] == ["headline"]
    jobs = plan(spec)
    sets: dict[str, set] = {}
    for j in jobs:
        sets.setdefault(j.cell.settings["eps"][0], set()).add(j.cell.settings["n"])
    assert sets == {"8/255": {1000}, "1/255": {500}, "2/255": {500}, "4/255": {500}}
    at8 = {("mixup" if "mixup" in str(j.cell.settings["checkpoint"]) else "iat",
            j.cell.settings["defense"], j.cell.settings["suite"])
           for j in jobs if j.cell.settings["eps"][0] == "8/255"}
    for model in ("mixup", "iat"):
        for defense in ("none", "mi-ol"):
            for suite in ("pgd", "eot-pgd", "autoattack", "transfer"):
                assert (model, defense, suite) in at8, (model, defense, suite)


def test_the_k_table_spec_makes_exactly_its_stored_records():
    """The shipped K table is rerunnable: on the real data its spec plans every stored record
    (same keys, so regrouping its grids resumes instead of attacking again) and no other done."""
    data = real_data_dir()
    root = Path(__file__).resolve().parents[1] / "leaderboards"
    jobs = plan(load_spec(root / "k_table.toml"), str(data))
    stored = {p.stem for p in (root / "results" / "k_table" / "store" / "records").glob("*.json")}
    # K in {1, 5, 15, 30} x two attacks x two models, and the ensemble + apgd-t at K = 1
    assert len({j.key for j in jobs}) == len(jobs) == 4 * 2 * 2 + 1
    assert {j.key for j in jobs if j.status == "done"} == stored
    partial = root / "results" / "k_table" / "store" / "partial"
    for j in jobs:
        if j.status == "partial":
            assert (partial / j.key).is_dir() and j.batches_done < j.batches


def test_a_checkpoint_beside_the_spec_is_found_from_anywhere(monkeypatch, tmp_path,
                                                            tiny_checkpoint):
    import shutil

    shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt")
    spec = load_spec(write_spec(tmp_path / "specs", Path("../tiny.pt")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    jobs = plan(spec, only=["adaptive"])
    assert len(jobs) == 2 and jobs[0].cell.settings["checkpoint"].endswith("tiny.pt")
    assert not (tmp_path / "specs" / "store").exists()
