"""The console summary of ``mi-bench attack``: one line per configured run (its seeds), rendered
from the same column list as the report's tables (``columns.py``), with the worst case taken by
the report's one per-example computation (``rows.example_scores``)."""

from __future__ import annotations

import numpy as np

from mi_bench.report.cells import example_scores
from mi_bench.report.columns import markdown_frame
from mi_bench.results import ResultStore

SUMMARY = ("model", "defense", "suite_run", "eps_norm", "n", "seeds", "clean_pct",
           "robust_seeds", "worst_case", "passes", "seconds", "flags")


class RunItem:
    """One configured run over its seeds, as the summary's columns read it."""

    def __init__(self, store: ResultStore, model: str, defense: str, suite: str,
                 surrogate: str | None, where: str, records: list[dict]):
        self.model, self.defense, self.where, self.records = model, defense, where, records
        self.suite_text = suite + (f" from {surrogate}" if surrogate else "")
        self.n = int(records[0]["n"])
        self.seeds = self.seeds_text = len(records)
        accs = np.array([r["robust_acc"] for r in records])
        self.clean_mean = float(np.mean([r["clean_acc"] for r in records]))
        self.robust_mean = float(accs.mean())
        self.robust_std = float(accs.std(ddof=1)) if len(accs) > 1 else 0.0
        scores, _ = example_scores(store, records)
        self.worst = float(scores["worst"].mean()) if scores else float("nan")
        self.forwards = int(sum(r["forwards"] for r in records))
        self.backwards = int(sum(r["backwards"] for r in records))
        self.seconds = float(sum(r["seconds"] for r in records))

    @property
    def clean_text(self) -> str:
        return f"{self.clean_mean:.1%}"

    @property
    def robust_text(self) -> str:
        return f"{self.robust_mean:.1%}" + (f" ± {self.robust_std:.1%}" if len(self.records) > 1
                                             else " (1 seed)")

    @property
    def worst_case_text(self) -> str:
        return f"{self.worst:.1%}"

    @property
    def flags(self) -> str:
        out = set()
        for r in self.records:
            f = r.get("flags", {})
            if f.get("large_eps", {}).get("masked"):
                out.add("masking?")
            if f.get("weaker_attack_stronger"):
                out.add("non-monotone")
            if f.get("autoattack_randomness_check"):
                out.add("randomized")
            if f.get("zero_grad_fraction", 0) > 0:
                out.add("zero-grad")
        return ", ".join(sorted(out)) or "-"


def summary_markdown(items: list[RunItem]) -> str:
    return markdown_frame(items, SUMMARY, "summary").to_markdown(index=False)
