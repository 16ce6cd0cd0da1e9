"""RobustBench-format ``model_info`` entries for mi-bench rows, with what was measured and how.

An entry names its defense, says when it is randomized (RobustBench admits only deterministic
ones), gives n, the seeds and the 95% interval over images, and claims no number that was not
measured here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mi_bench.report.rows import HEADLINE_EPS, Row, is_headline, seeds_text, slug
from mi_bench.results import atomic_write_text

MI_PAPER = {"link": "https://arxiv.org/abs/1909.11515",
            "name": "Mixup Inference: Better Exploiting Mixup to Defend Adversarial Attacks",
            "authors": "Tianyu Pang, Kun Xu, Jun Zhu", "venue": "ICLR 2020"}
METHOD_PAPERS = {
    "mixup": {"link": "https://arxiv.org/abs/1710.09412",
              "name": "mixup: Beyond Empirical Risk Minimization",
              "authors": "Hongyi Zhang, Moustapha Cisse, Yann N. Dauphin, David Lopez-Paz",
              "venue": "ICLR 2018"},
    "iat": {"link": "https://arxiv.org/abs/1906.06784",
            "name": "Interpolated Adversarial Training: Achieving Robust Neural Networks without "
                    "Sacrificing Too Much Accuracy",
            "authors": "Alex Lamb, Vikas Verma, Juho Kannala, Yoshua Bengio",
            "venue": "AISec 2019"},
}



def _step(step: float, norm: str) -> str:
    """Linf steps read as k/255, the unit every paper uses."""
    return f"{step * 255:.3g}/255" if norm == "Linf" else f"{step:.4g}"


def _attack_text(rec: dict) -> str:
    """One record's attack settings in words, for footnotes."""
    a = rec.get("attack") or {}
    if rec["suite"] == "autoattack":
        text = (f"AutoAttack {a.get('version')} ({', '.join(a.get('attacks') or [])}), "
                f"{a.get('n_iter', 100)} iterations, EOT {a.get('eot_iter')}, restarts "
                f"{a.get('restarts')}")
    else:
        name = "APGD" if a.get("variant") == "apgd" else "PGD"
        step = a.get("step_size")
        text = (f"{'targeted ' if a.get('targeted') else ''}{name}-{a.get('loss', 'ce').upper()}"
                f" {a.get('steps')} steps" + (f", step {_step(step, rec['norm'])}" if step else "") +
                f", EOT {a.get('eot_iter')}, restarts {a.get('restarts')}")
    if rec.get("attack_draws"):
        text += f", K={rec['attack_draws']} defense draws inside each attack forward"
    if rec["suite"] == "transfer":
        text += f", transferred from {rec.get('surrogate')}"
    return text


# the mark of an entry mi-bench wrote: the report replaces or removes only those
MEASURED_BY = "mi-bench (not a RobustBench leaderboard entry)"


def model_info_entry(row: Row) -> dict | None:
    """RobustBench ``model_info`` fields for one row; None without an adaptive number."""
    suite = row.rank_suite
    if suite is None:
        return None
    cell = row.cells[suite]
    rec = cell.records[0]
    method = row.card.get("method") or "unknown"
    paper = MI_PAPER if row.is_mi else METHOD_PAPERS.get(method, {
        "link": "", "name": f"{method} training, no inference-time defense", "authors": "",
        "venue": "mi-bench"})
    arch = row.card.get("arch") or "unknown"
    foot = [f"mi-bench evaluation of checkpoint {row.checkpoint} ({method} training, {arch}, "
            f"{row.card.get('epochs')} epochs, sha256 {(row.sha256 or 'unknown')[:12]})"
            + (f" with the inference-time defense {row.defense_label}, {row.forwards} "
               "forward passes per prediction" if not row.undefended
               else " without an inference-time defense") + "."]
    foot.append(f"Accuracies are means over {len(cell.seeds)} seed(s) ({seeds_text(cell.seeds)}) on "
                f"the first {cell.n} test images with {rec.get('eval_repeats')} evaluation "
                f"draw(s) each; per-example worst case over seeds and draws "
                + (f"{100 * cell.worst:.2f}%" if not math.isnan(cell.worst) else "unknown")
                + (f"; std over seeds {100 * cell.std:.2f}" if not math.isnan(cell.std) else "")
                + ".")
    foot.append(f"Attack: {_attack_text(rec)}.")
    if suite == "eot-pgd":
        foot.append("No AutoAttack record: autoattack_acc holds the EOT-PGD accuracy.")
    lo, hi = cell.ci
    foot.append(f"95% interval over the {cell.n} images: [{100 * lo:.2f}, {100 * hi:.2f}]; "
                "reported is empty: no paper number is claimed here.")
    if row.randomized:
        foot.append("RobustBench admits only deterministic defenses: this entry is not a "
                    "leaderboard entry.")
        foot.append(f"The defense is randomized (fresh draws for every prediction), so the "
                    f"model costs {row.forwards} forward passes per prediction and accuracies "
                    "vary between draws.")
        if row.settings.get("pool_split") == "test":
            foot.append("MI partners are drawn from the test split.")
    if row.problems:
        foot.append("Warnings: " + "; ".join(row.problems) + ".")
    return {
        "link": paper["link"], "name": paper["name"], "authors": paper["authors"],
        "additional_data": False, "number_forward_passes": row.forwards,
        "dataset": row.dataset, "venue": paper["venue"],
        "architecture": f"{arch}" + (f" + {row.defense}" if not row.undefended else ""),
        "eps": row.eps_label, "clean_acc": f"{100 * cell.clean_mean:.2f}",
        "reported": "", "autoattack_acc": f"{100 * cell.mean:.2f}",
        "footnote": " ".join(foot), "unreliable": False,
        # beyond RobustBench's fields: what this number is, so it is never read as more
        "randomized": row.randomized, "n_examples": cell.n, "seeds": cell.seeds,
        "autoattack_acc_ci95": [round(100 * lo, 2), round(100 * hi, 2)],
        "measured_by": MEASURED_BY,
    }


def model_info_name(row: Row, rows: list[Row]) -> str:
    """``mibench_<model>_<defense>``, plus N and lambda when one checkpoint has several MIs."""
    same = [r for r in rows if (r.model, r.defense, r.norm) == (row.model, row.defense, row.norm)]
    name = f"mibench_{row.model}_{row.defense}"
    if len(same) > 1 and row.settings:
        name += "_" + "_".join(f"{k}{v}" for k, v in sorted(row.settings.items())
                               if k not in ("pool", "mode") and not isinstance(v, dict))
    return slug(name)


def write_model_info(rows: list[Row], out: str | Path
                     ) -> tuple[list[Path], list[str], list[str]]:
    """One ``model_info/<dataset>/<threat>/<name>.json`` per row at its norm's headline eps.

    Returns the written paths, a note for each row skipped for lack of an adaptive number, and
    one for each stale entry of mi-bench's removed (for the console: a rerun removes none).
    """
    head = [r for r in rows if r.norm in HEADLINE_EPS and is_headline(r, r.norm)]
    written, skipped = [], []
    for row in head:
        entry = model_info_entry(row)
        if entry is None:
            skipped.append(f"model_info skipped for {row.label} ({row.where}): no AutoAttack "
                           "or EOT-PGD record")
            continue
        path = Path(out) / "model_info" / row.dataset / row.norm / \
            f"{model_info_name(row, head)}.json"
        atomic_write_text(path, json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written, skipped, _remove_stale(Path(out) / "model_info", written)


def _remove_stale(root: Path, written: list[Path]) -> list[str]:
    """Delete mi-bench's own entries that no row makes any more (a record archived, a row
    gone), so an entry never outlives the numbers it quotes; entries not by mi-bench stay."""
    notes, keep = [], {p.resolve() for p in written}
    for path in sorted(root.glob("*/*/mibench_*.json")) if root.is_dir() else []:
        if path.resolve() in keep:
            continue
        try:
            mine = json.loads(path.read_text()).get("measured_by") == MEASURED_BY
        except (OSError, ValueError, AttributeError):
            mine = False
        if mine:
            path.unlink()
            notes.append(f"model_info removed: {path.relative_to(root)} (no row makes it now)")
    return notes
