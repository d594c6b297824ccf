"""Figures of a comparison (`study.compare`): axis scores, raw metrics per axis, trade-off scatters."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechvae_jax.evaluate import plots  # noqa: E402
from speechvae_jax.presets.alignment import SCHEMES  # noqa: E402
from speechvae_jax.study import score  # noqa: E402

ROW_LABELS = {"ground_truth": "ground truth", "teacher": "teacher", "log_mel": "log_mel",
              "resynthesis": "resynthesis"}
ROLE_MARKERS = {"baseline": "s", "grid": "o", "sweep": "D", "recipe": "^", "": "o"}


def axis_scores(result: dict, path: str) -> str:
    """Grouped horizontal bars: each run's axis scores and overall score, in ranking order."""
    names = result["ranking"]
    axes = [a for a in score.AXES if any(result["runs"][n]["scores"]["axes"].get(a) is not None for n in names)]
    series = axes + ["overall"]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * len(names) * max(1, len(series) / 2.5)))
    height = 0.8 / len(series)
    for i, s in enumerate(series):
        vals = [(result["runs"][n]["scores"]["overall"] if s == "overall" else
                 result["runs"][n]["scores"]["axes"].get(s)) for n in names]
        ys = np.arange(len(names)) + (i - (len(series) - 1) / 2) * height
        bars = ax.barh(ys, [v if v is not None else 0.0 for v in vals], height=height, label=s,
                       color="black" if s == "overall" else plt.cm.tab10(i), alpha=0.85 if s != "overall" else 0.7)
        for bar, v in zip(bars, vals):
            ax.text(bar.get_width(), bar.get_y() + height / 2, f" {v:.0f}" if v is not None else " n/a",
                    va="center", fontsize=6)
    ax.axvline(0, color="grey", lw=0.8)
    ax.axvline(100, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("score (0 = zero anchor, 100 = hundred anchor; higher is better)")
    ax.set_title("axis and overall scores, best run first", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def metric_bars(result: dict, axis: str, path: str) -> str | None:
    """One panel per metric of `axis`: a bar per run plus the reference rows (hatched)."""
    groups, errors = {}, {}
    for name, r in result["runs"].items():
        for m, row in r["metrics"].get(axis, {}).items():
            if row.get("value") is not None:
                groups.setdefault(m, {})[name] = row["value"]
                if len(row.get("seeds", [])) > 1:
                    errors.setdefault(m, {})[name] = float(np.std(row["seeds"]))
    for m, refs in result["references"].get(axis, {}).items():
        for row, label in ROW_LABELS.items():
            if m in groups and isinstance(refs.get(row), (int, float)):
                groups[m][label] = refs[row]
                if len(refs.get(f"{row}_seeds", [])) > 1:
                    errors.setdefault(m, {})[label] = float(np.std(refs[f"{row}_seeds"]))
    if not groups:
        return None
    return plots.metric_bars(groups, path, f"{axis}: raw metrics per run (reference rows hatched)",
                             errors or None, columns=3)


def _points(result: dict, x_axis: str, y_axis: str) -> dict[str, tuple[float, float]]:
    pts = {}
    for name, r in result["runs"].items():
        x, y = r["scores"]["axes"].get(x_axis), r["scores"]["axes"].get(y_axis)
        if x is not None and y is not None:
            pts[name] = (x, y)
    return pts


def tradeoff(result: dict, x_axis: str, y_axis: str, path: str) -> str | None:
    """Scatter of two axis scores, a point per run (marker by role), the hyper-weight sweep joined
    in order, and the anchors (score 0 and 100) of each axis drawn as reference lines."""
    pts = _points(result, x_axis, y_axis)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for name, (x, y) in pts.items():
        info = result["runs"][name]["info"]
        colour = plt.cm.tab10(SCHEMES.index(info["scheme"]) if info["scheme"] in SCHEMES else 9)
        ax.scatter(x, y, marker=ROLE_MARKERS.get(info["role"], "o"), s=50, zorder=3, color=colour,
                   edgecolor="black", linewidth=0.5)
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    sweep = [n for n in result["sweep"] if n in pts]
    if len(sweep) > 1:
        xs, ys = zip(*[pts[n] for n in sweep])
        ax.plot(xs, ys, color="black", lw=1, ls=":", zorder=2, label="hyper-weight sweep")
        for n in sweep:
            ax.annotate(f"w={result['runs'][n]['info']['hyper_weight']:g}", pts[n], fontsize=6,
                        xytext=(4, -9), textcoords="offset points", color="dimgray")
    _anchor_lines(ax, result, x_axis, "x")
    _anchor_lines(ax, result, y_axis, "y")
    for role, marker in ROLE_MARKERS.items():
        if role and any(result["runs"][n]["info"]["role"] == role for n in pts):
            ax.scatter([], [], marker=marker, color="white", edgecolor="black", label=role)
    ax.set_xlabel(f"{x_axis} score (higher is better)")
    ax.set_ylabel(f"{y_axis} score (higher is better)")
    ax.set_title(f"trade-off: {x_axis} vs {y_axis}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _anchor_lines(ax, result: dict, axis: str, which: str) -> None:
    """Lines at score 0 and 100 of `axis`, labelled with the anchors' names (the reference rows)."""
    specs = result["score_config"]["metrics"].get(axis, {})
    used = [s for m, s in specs.items() if f"{axis}/{m}" in result["anchors"]]
    if not used:
        return
    names = {0: sorted({_anchor_label(s[1]) for s in used}), 100: sorted({_anchor_label(s[2]) for s in used})}
    for value, labels in names.items():
        text = f"{axis} {value}: " + ", ".join(labels)
        if which == "x":
            ax.axvline(value, color="grey", lw=0.8, ls="--" if value else "-")
            ax.text(value, 1.0, " " + text, transform=ax.get_xaxis_transform(), fontsize=6, rotation=90,
                    va="top", ha="right", color="dimgray")
        else:
            ax.axhline(value, color="grey", lw=0.8, ls="--" if value else "-")
            ax.text(1.0, value, text + " ", transform=ax.get_yaxis_transform(), fontsize=6, va="bottom",
                    ha="right", color="dimgray")


def _anchor_label(spec) -> str:
    if isinstance(spec, (int, float)):
        return "ideal value"
    return f"run {spec[4:]}" if str(spec).startswith("run:") else ROW_LABELS.get(spec, str(spec))


def write_all(result: dict, out_dir: str) -> list[str]:
    """Every figure of the comparison; returns the file names written."""
    made = [axis_scores(result, os.path.join(out_dir, "scores.png"))]
    for axis in score.AXES:
        made.append(metric_bars(result, axis, os.path.join(out_dir, f"{axis}_metrics.png")))
    for other in ("understanding", "generation"):
        made.append(tradeoff(result, "reconstruction", other,
                             os.path.join(out_dir, f"tradeoff_reconstruction_{other}.png")))
    return [os.path.basename(p) for p in made if p]
