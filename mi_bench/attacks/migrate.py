"""Carry deterministic records from protocol 2 to 3 without recomputing them.

Protocol 3 (``attacks/draws.py``) changes only how a randomized defense is evaluated: for a
deterministic model S = R = 1, one array serves as selection and scoring draws, the attack's
randomness is seeded as before, and every choice the ensemble makes is the same, so the new
protocol would compute exactly these numbers again. What changes is the layout:

- ``adv`` is the correctness at the kept candidate, so it becomes ``adv & clean``; ``clean_select``
  and ``adv_select`` are the same arrays; ``chosen`` says which candidate (0: the clean image);
- an ensemble member's array is its own score on the points it attacked (NaN elsewhere), where
  protocol 2 stored the running minimum (``adv_<member>``); it is rebuilt by replaying the
  members in order, and the record is refused if the replay does not end at the stored ``adv``.

Records of randomized defenses cannot be carried over (their choices read the draws they
report); they are left in place, or moved to an archive, and must be regenerated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mi_bench.attacks.runner import IDENTITY
from mi_bench.defenses import defense_randomized
from mi_bench.errors import UserError
from mi_bench.results import PROTOCOL, ResultStore, record_key

FROM_PROTOCOL = 2
# the identity fields protocol 3 adds, with the value a protocol-2 run had in effect
ADDED = {"select_repeats": 8}


def upgrade(record: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """The protocol-3 record and arrays of one deterministic protocol-2 record."""
    if _randomized(record, arrays):
        raise UserError(f"record {record['key']}: a randomized defense's record cannot be "
                        "carried over; regenerate it")
    clean = np.asarray(arrays["clean"], bool)
    adv = np.asarray(arrays["adv"], bool) & clean
    members = [m for m in (record.get("attack") or {}).get("attacks") or []
               if f"adv_{m}" in arrays]
    out = {"clean": clean, "clean_select": clean, "adv": adv, "adv_select": adv}
    new = {k: v for k, v in record.items() if k != "key"}
    if members:
        alive, out["chosen"], own, new["ensemble"] = _replay(members, arrays, clean[0])
        if not np.array_equal(alive, adv[0]):
            raise UserError(f"record {record['key']}: replaying its members does not give its "
                            "stored result; regenerate it")
        out.update({f"member_{m}": a for m, a in own.items()})
    else:  # the point is kept unless the clean image is strictly lower (wrong, point right)
        out["chosen"] = np.where(~clean[0] & np.asarray(arrays["adv"], bool)[0], 0, 1
                                 ).astype(np.int16)
    new.update(protocol=PROTOCOL, **ADDED)
    new["robust_acc"] = float(adv.mean())
    new["robust_worst_acc"] = float(adv.all(0).mean())
    new["robust_select_acc"] = new["robust_acc"]
    new["migrated_from"] = {"protocol": FROM_PROTOCOL, "key": record["key"]}
    new["key"] = record_key({k: new[k] for k in identity_fields(record)})
    return new, out


def _replay(members: list[str], arrays: dict[str, np.ndarray], clean: np.ndarray):
    """Replay the ensemble: member i attacks what is still right and breaks some. Returns what
    stays right, the chosen candidate per image, each member's own scores, and the summary."""
    alive, chosen = clean.copy(), np.zeros(clean.shape[0], dtype=np.int16)
    own, summary = {}, {}
    for i, m in enumerate(members, 1):
        mine = np.asarray(arrays[f"adv_{m}"], bool)[0]
        own[m] = np.where(alive, mine, np.nan).astype(np.float32)
        # the first point replaces the clean image on a tie too; later ones when lower
        won = alive.copy() if i == 1 else alive & ~mine
        chosen[won] = i
        alive &= mine
        attacked = ~np.isnan(own[m])
        summary[m] = {"own_acc": float(own[m][attacked].mean()) if attacked.any() else None,
                      "attacked": int(attacked.sum()), "wins": int(won.sum())}
    return alive, chosen, own, summary


def identity_fields(record: dict) -> list[str]:
    """The fields of a record's identity under protocol 3 (the runner's ``identity``)."""
    return [k for k in IDENTITY if k in record or k in ADDED]


def migrate_store(root: str | Path, archive: str | Path | None = None,
                  log=print) -> tuple[int, int]:
    """Upgrade every deterministic protocol-2 record of the store at ``root`` in place; move
    the records that must be regenerated (randomized) to ``archive`` when given. Returns the
    numbers upgraded and left to regenerate."""
    store = ResultStore(root)
    folder = store.root / "records"
    if not folder.is_dir():
        raise UserError(f"{root}: no records/ folder; is this a result store?")
    upgraded = stale = 0
    for path in sorted(folder.glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("protocol") != FROM_PROTOCOL:
            continue
        arrays = store.load_examples(rec["key"])
        if "clean" not in arrays or _randomized(rec, arrays):  # (binarization: rerun)
            stale += 1
            if archive is not None:
                dest = Path(archive) / "records"
                dest.mkdir(parents=True, exist_ok=True)
                for p in (path, path.with_suffix(".npz")):
                    shutil.move(str(p), dest / p.name)
            continue
        new, out = upgrade(rec, arrays)
        if not store.has(new["key"]):
            store.write(new["key"], new, out)
        for p in (path, path.with_suffix(".npz")):
            p.unlink()
        upgraded += 1
        log(f"{rec['key']} -> {new['key']}: {rec['checkpoint']} + {rec['defense']}, "
            f"{rec['suite']}, eps {rec.get('eps_label')}, seed {rec['seed']}")
    return upgraded, stale


def _randomized(record: dict, arrays: dict) -> bool:
    """The record's own flag, else the registry's (older records lack it), else the draws."""
    flag = record.get("defense_randomized")
    if flag is None:
        flag = defense_randomized(record.get("defense", ""))
    return bool(flag) if flag is not None else np.asarray(arrays["clean"]).shape[0] > 1
