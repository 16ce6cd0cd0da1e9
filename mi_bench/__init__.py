"""mi-bench: does Mixup Inference still protect a mixup-trained classifier under adaptive attacks?

Stages, one module or folder each: ``data`` -> ``models`` (+ ``checkpoint``, ``train``) ->
``defense`` (Mixup Inference) -> ``attacks`` -> ``results`` -> ``report`` / ``leaderboard``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``mi_bench.benchmark`` without importing torch on ``import mi_bench`` (the CLI stays quick)."""
    if name in ("benchmark", "BenchmarkResult"):
        from mi_bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'mi_bench' has no attribute {name!r}")
