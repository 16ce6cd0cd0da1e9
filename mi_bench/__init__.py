"""mi-bench: does Mixup Inference still protect a mixup-trained classifier under adaptive attacks?

Stages, one module or folder each: ``data`` -> ``models`` (+ ``checkpoint``, ``train``) ->
``defense`` (Mixup Inference) -> ``attacks`` -> ``results`` -> ``report`` / ``leaderboard``.
"""

__version__ = "0.1.0"
