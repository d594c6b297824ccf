# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A study folder: table, overall score, trade-offs, and the axes re-weighted
#
# Loads a study made by `speechvae study --config configs/study_tiny.py --workdir STUDY` (or any
# folder of evaluated runs), shows the comparison table with the per-axis and overall scores
# (`speechvae_jax.study.score`, defined in `docs/study.md`), the trade-off plots, and ranks the runs
# again under other axis weights. Set `SPEECHVAE_STUDY` to the study folder before starting Jupyter,
# or edit `STUDY` below. `tests/test_notebooks.py` runs it on a small hand-made study.

# %%
import json
import os

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from speechvae_jax.study import compare, figures, score


def show(header: list, rows: list) -> None:
    """A markdown table in the notebook."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    display(Markdown("\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])))


STUDY = os.environ.get("SPEECHVAE_STUDY", "study_out")
runs_root = os.path.join(STUDY, "runs")
names = sorted(n for n in os.listdir(runs_root)
               if os.path.exists(os.path.join(runs_root, n, "eval", "report.json")))
plan_path = os.path.join(STUDY, "plan.json")
plan = json.load(open(plan_path)) if os.path.exists(plan_path) else {"runs": [], "study": {}}
roles = {r["name"]: r["role"] for r in plan["runs"]}
on_sweep = plan["study"].get("sweep") or {}
sweep = [r["name"] for r in sorted(plan["runs"], key=lambda r: r["hyper_weight"] or 0)
         if r["role"] in ("grid", "sweep") and r["name"] in names
         and (r["scheme"], r["weighting"]) == (on_sweep.get("scheme"), on_sweep.get("weighting"))
         and r["hyper_weight"] in on_sweep.get("hyper_weights", [])]
print(f"{len(names)} evaluated runs in {STUDY}; sweep: {sweep}")

# %% [markdown]
# ## The comparison (recomputed from the runs' reports; also written to `STUDY/compare/`)

# %%
out_dir = os.path.join(STUDY, "compare")
result = compare.compare([os.path.join(runs_root, n) for n in names], out_dir, names=names,
                         score_config=plan["study"].get("score"), sweep=sweep, roles=roles)
show(*compare.score_rows(result))

# %% [markdown]
# Metrics left out of the score, and why (a missing anchor, or anchors in the wrong order):

# %%
show(["metric", "reason"], sorted(result["dropped"].items()))

# %% [markdown]
# ## Trade-offs: reconstruction against understanding (and generation, when evaluated)

# %%
for axis in ("understanding", "generation"):
    path = figures.tradeoff(result, "reconstruction", axis, os.path.join(out_dir, f"tradeoff_reconstruction_{axis}.png"))
    if path:
        plt.figure(figsize=(7, 5.5))
        plt.imshow(plt.imread(path))
        plt.axis("off")
        plt.show()

# %% [markdown]
# ## Re-weighting the axes
#
# The overall score is a weighted mean of the axis scores. Edit `weights` and re-run the cell to see
# the ranking under your own priorities; the table below it sweeps the understanding weight.

# %%
tables = {n: r["metrics"] for n, r in result["runs"].items()}
base = score.resolve_config(plan["study"].get("score"))


def ranked(weights: dict) -> list[tuple]:
    """(run, {axis: score}, overall) best first, under `weights`."""
    cfg = score.resolve_config({"axis_weights": weights, "metrics": base.metrics.to_dict()})
    scored = score.score_runs(tables, cfg)
    return [(n, scored["runs"][n]["axes"], scored["runs"][n]["overall"]) for n in score.ranking(scored)]


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


weights = {"reconstruction": 1.0, "understanding": 1.0, "generation": 1.0}
order = ranked(weights)
axes = [a for a in score.AXES if any(a in ax for _, ax, _ in order)]
show(["run", *axes, "overall"], [[n, *[fmt(ax.get(a)) for a in axes], fmt(o)] for n, ax, o in order])

# %%
sweep_weights = [0.0, 0.5, 1.0, 2.0, 4.0]
orders = {w: [n for n, _, _ in ranked({**weights, "understanding": w})] for w in sweep_weights}
show(["rank", *[f"understanding x{w:g}" for w in sweep_weights]],
     [[i + 1, *[orders[w][i] for w in sweep_weights]] for i in range(len(names))])

# %% [markdown]
# ## Stability of the ranking over probe seeds

# %%
st = result["stability"]
seeds = list(st["rankings"])
show(["rank", *[f"probe seed {s}" for s in seeds]],
     [[i + 1, *[st["rankings"][s][i] if i < len(st["rankings"][s]) else "-" for s in seeds]]
      for i in range(max((len(o) for o in st["rankings"].values()), default=0))])
print(f"mean Kendall tau between seeds: {st['kendall_tau_mean']}; rank range per run: {st['rank_range']}")
