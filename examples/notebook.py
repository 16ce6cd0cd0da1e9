# %% [markdown]
# # Does MI-OL help at small eps? A notebook-style script
# Run it as a script (`python examples/notebook.py [N]`) or cell by cell (`# %%`) in an IDE.
# It writes `mi_eps.png`: robust accuracy against eps, with and without MI-OL, 95% intervals.

# %%
import sys

from matplotlib.figure import Figure

import mi_bench

n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 16
results = {
    defense: mi_bench.benchmark("mixup", n_examples=n, eps=["2/255", "4/255", "8/255"],
                                defense=defense, suites="pgd", eval_repeats=2,
                                defense_opts={"n_samples": 10} if defense == "mi-ol" else None)
    for defense in ("none", "mi-ol")}

# %%
fig = Figure(figsize=(5, 3.5))
ax = fig.subplots()
for defense, res in results.items():
    f = res.frame
    x = [float(e.split("/")[0]) for e in f["eps"]]
    ax.errorbar(x, 100 * f["worst"], capsize=3, marker="o", label=defense,
                yerr=[100 * (f["worst"] - f["worst_low"]), 100 * (f["worst_high"] - f["worst"])])
ax.set(xlabel="eps (/255, Linf)", ylabel="robust accuracy (%)",
       title=f"oblivious PGD-10 on mixup, n = {n}")
ax.legend()
fig.savefig("mi_eps.png", dpi=100, bbox_inches="tight")
print(results["mi-ol"])
print("wrote mi_eps.png")
