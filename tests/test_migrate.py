"""Deterministic records carry over from protocol 2 to 3 unchanged: a record written the old
way and migrated equals the record the new protocol computes; randomized ones are refused."""

from __future__ import annotations

import numpy as np
import pytest

from mi_bench.attacks.migrate import FROM_PROTOCOL, migrate_store, upgrade
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.errors import UserError
from mi_bench.results import ResultStore, record_key


def _new(tmp_path, ckpt, **kw) -> dict:
    cfg = AttackConfig(checkpoint=str(ckpt), defense="none", eps=8 / 255, eps_label="8/255",
                       n_examples=8, batch_size=4, steps=2, sanity=False, **kw)
    return AttackRun(cfg, ResultStore(tmp_path / "new"), progress=False,
                     log=lambda m: None).run_seed(0)


def _as_protocol_2(rec: dict, ex: dict) -> tuple[dict, dict]:
    """What protocol 2 stored for the same run: no selection arrays, members' running minima."""
    old = {k: v for k, v in rec.items() if k not in ("select_repeats", "robust_select_acc")}
    old["protocol"] = FROM_PROTOCOL
    ident = {k: old[k] for k in ("protocol", "checkpoint", "checkpoint_sha256", "defense",
                                 "defense_settings", "suite", "attack", "attack_draws", "norm",
                                 "eps", "seed", "n", "eval_repeats", "data", "batch_size")}
    old["key"] = record_key(ident)
    # protocol 2 stored the point's own correctness outside the ensemble (right where the clean
    # image, wrong, was kept) and the running minimum inside it
    raw = ex["adv"] | ((ex["chosen"] == 0) & ~ex["clean"]) if not rec.get("ensemble") \
        else ex["adv"]
    arrays = {"clean": ex["clean"], "adv": raw}
    for k in ex:
        if k.startswith("member_"):  # a point not attacked was already wrong: 0 then
            arrays["adv_" + k.removeprefix("member_")] = np.nan_to_num(ex[k])[None].astype(bool)
    if rec.get("ensemble"):
        old["ensemble"] = {m: {"robust_acc": 0.0, "wins": v["wins"]}
                           for m, v in rec["ensemble"].items()}
    return old, arrays


@pytest.mark.parametrize("kw", [
    {"suite": "pgd"},
    {"suite": "autoattack", "aa_version": "ensemble", "eot_iter": 1,
     "aa_attacks": ["apgd-ce", "eot-pgd-margin"]},
])
def test_a_migrated_record_is_the_record_protocol_3_computes(tmp_path, tiny_checkpoint, kw):
    rec = _new(tmp_path, tiny_checkpoint, **kw)
    ex = ResultStore(tmp_path / "new").load_examples(rec["key"])
    old, arrays = _as_protocol_2(rec, ex)
    old_store = ResultStore(tmp_path / "old")
    old_store.write(old["key"], old, arrays)
    assert migrate_store(tmp_path / "old", log=lambda m: None) == (1, 0)
    (migrated,) = old_store.records()
    assert migrated["key"] == rec["key"] and migrated["migrated_from"]["key"] == old["key"]
    for k in ("robust_acc", "robust_select_acc", "robust_worst_acc", "ensemble"):
        assert migrated.get(k) == rec.get(k), k
    got = old_store.load_examples(rec["key"])
    assert set(got) == set(ex)
    for k in ex:
        assert np.array_equal(got[k], ex[k], equal_nan=ex[k].dtype.kind == "f"), k


def test_a_randomized_record_is_refused_and_archived(tmp_path):
    rec = {"key": "abc", "defense_randomized": True, "protocol": FROM_PROTOCOL,
           "checkpoint": "c", "defense": "mi-ol", "suite": "pgd", "seed": 0}
    with pytest.raises(UserError, match="regenerate"):
        upgrade(rec, {"clean": np.ones((5, 3), bool), "adv": np.ones((5, 3), bool)})
    store = ResultStore(tmp_path / "s")
    store.write("abc", rec, {"clean": np.ones((5, 3), bool), "adv": np.ones((5, 3), bool)})
    assert migrate_store(tmp_path / "s", tmp_path / "archive", log=lambda m: None) == (0, 1)
    assert not store.has("abc") and (tmp_path / "archive" / "records" / "abc.json").is_file()
