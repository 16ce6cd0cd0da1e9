"""Plots made from stored records only (matplotlib, Agg, PNG), written by ``mi-bench report``.

Why these three: (a) robust accuracy against eps shows whether MI's gain over the base model
survives the adaptive attack at every radius, not just at 8/255; (b) accuracy against EOT
iterations and attack partners K shows whether the adaptive attack has converged (a curve still
falling means the reported number is an upper bound); (c) accuracy against N and lambda shows
the price and the benefit of MI's own knobs. Every point is a mean over seeds with a min..max
band. A plot with no data is not drawn: it is skipped with a note, never an empty image.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from mi_bench.report.columns import suite_column, suite_order
from mi_bench.report.rows import IDENTITY_FIELDS, Row, flat_identity, slug
from mi_bench.results import atomic_write_bytes, dotted_get

MIN_Y_SPAN = 10.0  # percentage points: the narrowest accuracy axis a sweep plot gets
# (file stem, dotted record key, axis label, title, also draw clean accuracy)
SWEEPS = (
    ("convergence_eot", "attack.eot_iter", "EOT iterations per step",
     "Adaptive-attack convergence against EOT iterations", False),
    ("convergence_k", "attack_draws", "defense draws K inside the attack",
     "Adaptive-attack convergence against attack partners K", False),
    ("mi_n", "defense_settings.n_samples", "MI partners N per prediction", "Accuracy against MI's N", True),
    ("mi_lambda", "defense_settings.lam", "MI mixing ratio λ", "Accuracy against MI's λ", True),
)


@dataclass
class Plots:
    """Files written and a note for every plot that had no data."""

    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _save(fig: Figure, path: Path) -> Path:
    """Render with Agg into memory, then write atomically: no half-written PNG on a kill."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _min_span(ax, span: float) -> None:
    """Widen the y axis to at least ``span`` points, so that noise does not look like a trend."""
    lo, hi = ax.get_ylim()
    if hi - lo < span:
        mid = (lo + hi) / 2
        lo, hi = max(0.0, mid - span / 2), min(100.0, mid + span / 2)
        ax.set_ylim(lo, max(hi, lo + span))


def _eps_x(norm: str, eps: float) -> float:
    return eps * 255 if norm == "Linf" else eps


def _band(ax, xs, accs_per_x, label, style="-o", color=None, cis=None):
    """Mean line with a min..max band over seeds and, given ``cis``, 95% error bars over images;
    returns the line's colour."""
    mean = [100 * np.mean(a) for a in accs_per_x]
    (line,) = ax.plot(xs, mean, style, label=label, color=color, ms=4)
    if cis is not None:
        err = [[max(0.0, m - 100 * lo) for m, (lo, _) in zip(mean, cis)],
               [max(0.0, 100 * hi - m) for m, (_, hi) in zip(mean, cis)]]
        ax.errorbar(xs, mean, yerr=err, fmt="none", ecolor=line.get_color(), capsize=2,
                    lw=0.8)
    if any(len(a) > 1 for a in accs_per_x):
        ax.fill_between(xs, [100 * np.min(a) for a in accs_per_x],
                        [100 * np.max(a) for a in accs_per_x], color=line.get_color(),
                        alpha=0.2, lw=0)
    return line.get_color()


def plot_eps(rows: list[Row], folder: Path) -> Plots:
    """(a) One figure per (checkpoint, norm): a panel per suite, a curve per defense."""
    result = Plots()
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.model, r.norm), []).append(r)
    for (model, norm), group in sorted(groups.items()):
        panels = []
        for suite in suite_order():
            curves: dict[tuple[str, int], list[Row]] = {}
            for r in group:
                if suite in r.cells:
                    curves.setdefault((r.defense_label, r.forwards), []).append(r)
            curves = {k: sorted(v, key=lambda r: r.eps) for k, v in curves.items()
                      if len({round(r.eps, 8) for r in v}) >= 2}
            if curves:
                panels.append((suite, curves))
        if not panels:
            result.skipped.append(f"eps plot skipped for {model} ({norm}): no suite has "
                                  "records at two or more eps")
            continue
        fig = Figure(figsize=(4.6 * len(panels), 3.8))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (suite, curves) in zip(axes, panels):
            for (defense, n_fwd), rs in sorted(curves.items()):
                xs = [_eps_x(norm, r.eps) for r in rs]
                accs = [r.cells[suite].chosen.accs for r in rs]
                _band(ax, xs, accs, f"{defense}, N {n_fwd}",
                      cis=[r.cells[suite].ci for r in rs])
            ax.set_title(f"{suite_column(suite)} ({suite})")
            ax.set_xlabel("eps (×1/255)" if norm == "Linf" else "eps (L2)")
            ax.set_ylabel("robust accuracy (%)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{model}: robust accuracy against eps ({norm}); bars: 95% over images, "
                     "band: min..max over seeds",
                     fontsize=9)
        result.files.append(_save(fig, folder / f"eps_{slug(model)}_{norm}.png"))
    return result


def sweep_series(records: list[dict], key: str) -> dict[str, dict[float, list[dict]]]:
    """Records that differ only in ``key`` (and the seed), as {series label: {x: records}}.

    Only series with two or more distinct x values are kept; labels name what tells series apart.
    """
    series: dict[str, dict] = {}
    for rec in records:
        x = dotted_get(rec, key)
        if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        ident = {k: v for k, v in flat_identity(rec, IDENTITY_FIELDS).items()
                 if k not in (key, "seed")}
        if key == "defense_settings.n_samples" and rec.get("attack_draws") == x:
            ident["attack_draws"] = '"N"'  # the attack's K followed N: same series
        skey = json.dumps(ident, sort_keys=True)
        s = series.setdefault(skey, {"ident": ident, "rec": rec, "x": {}})
        s["x"].setdefault(float(x), []).append(rec)
    kept = [s for s in series.values() if len(s["x"]) >= 2]
    labels = []
    for s in kept:
        r = s["rec"]
        labels.append(f"{r['checkpoint']} + {r['defense']} · {r['suite']} · eps "
                      f"{r.get('eps_label', r['eps'])} {r['norm']}")
    out: dict[str, dict[float, list[dict]]] = {}
    for i, s in enumerate(kept):
        label = labels[i]
        twins = [t for j, t in enumerate(kept) if labels[j] == label and j != i]
        if twins:
            diff = sorted(k for k in s["ident"] if any(t["ident"].get(k) != s["ident"][k]
                                                      for t in twins))
            label += " · " + ", ".join(f"{k}={s['ident'][k]}" for k in diff)
        out[label] = dict(sorted(s["x"].items()))
    return out


def plot_sweep(records: list[dict], key: str, path: Path, xlabel: str, title: str,
               clean: bool) -> Path | None:
    """(b)/(c) robust accuracy (and optionally clean, dashed) against one setting; None if empty."""
    series = sweep_series(records, key)
    if not series:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    xs_all = []
    for label, points in sorted(series.items()):
        xs = list(points)
        xs_all += xs
        color = _band(ax, xs, [np.array([r["robust_acc"] for r in points[x]]) for x in xs],
                      f"{label} (robust)")
        if clean:
            _band(ax, xs, [np.array([r["clean_acc"] for r in points[x]]) for x in xs],
                  f"{label} (clean)", style="--s", color=color)
    if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(xs_all)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    elif all(float(x).is_integer() for x in xs_all):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    _min_span(ax, MIN_Y_SPAN)
    ax.set_title(f"{title}\n(mean over seeds, band = min..max)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, path)


def make_plots(rows: list[Row], folder: str | Path) -> Plots:
    """All plots the stored records support, into ``folder``; notes for the ones they do not."""
    folder = Path(folder)
    result = plot_eps(rows, folder)
    records = [r for row in rows for c in row.cells.values()
               for r in [*c.chosen.records, *(x for v in c.others for x in v.records)]]
    for stem, key, xlabel, title, clean in SWEEPS:
        path = plot_sweep(records, key, folder / f"{stem}.png", xlabel, title, clean)
        if path is None:
            result.skipped.append(f"{stem} plot skipped: no records that differ only in {key}")
        else:
            result.files.append(path)
    return result
