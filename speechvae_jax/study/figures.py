"""Figures of a comparison (`study.compare`): axis scores, raw metrics per axis, trade-off scatters."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from speechvae_jax.evaluate import plots  # noqa: E402
from speechvae_jax.presets.alignment import SCHEMES  # noqa: E402
from speechvae_jax.study import score  # noqa: E402

ROW_LABELS = {"ground_truth": "ground truth", "teacher": "teacher", "log_mel": "log_mel",
              "resynthesis": "resynthesis"}
ROLE_MARKERS = {"baseline": "s", "grid": "o", "sweep": "D", "recipe": "^", "": "o"}
WEIGHTING_MARKERS = {"fixed": "o", "adaptive": "o", "shared": "P"}


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
    return plots.metric_bars(groups, path, f"{axis}: metrics per run (hatched: reference rows)",
                             errors or None, columns=3)


def _points(result: dict, x_axis: str, y_axis: str) -> dict[str, tuple[float, float]]:
    pts = {}
    for name, r in result["runs"].items():
        x, y = r["scores"]["axes"].get(x_axis), r["scores"]["axes"].get(y_axis)
        if x is not None and y is not None:
            pts[name] = (x, y)
    return pts


def _style(info: dict) -> dict:
    """Marker style of a run: colour = scheme, shape = role, hollow = fixed weighting."""
    colour = plt.cm.tab10(SCHEMES.index(info["scheme"]) if info["scheme"] in SCHEMES else 9)
    hollow = info["weighting"] == "fixed" and info["role"] != "baseline"
    return {"marker": WEIGHTING_MARKERS.get(info["weighting"], "o") if info["role"] == "grid"
            else ROLE_MARKERS.get(info["role"], "o"),
            "facecolor": "white" if hollow else colour, "edgecolor": colour if hollow else "black",
            "linewidth": 1.5 if hollow else 0.5}


def tradeoff(result: dict, x_axis: str, y_axis: str, path: str) -> str | None:
    """Scatter of two axis scores, a point per run (colour = scheme, shape = weighting or role),
    the hyper-weight sweep joined in order, and the anchors (score 0 and 100) of each axis drawn as
    reference lines (named in the axis labels when off the chart)."""
    pts = _points(result, x_axis, y_axis)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(8, 6))
    for name, (x, y) in pts.items():
        info = result["runs"][name]["info"]
        ax.scatter(x, y, s=60, zorder=3, **_style(info))
        if info["role"] in ("baseline", "recipe"):
            ax.annotate(name, (x, y), fontsize=7, xytext=(5, 4), textcoords="offset points")
    sweep = [n for n in result["sweep"] if n in pts]
    if len(sweep) > 1:
        xs, ys = zip(*[pts[n] for n in sweep])
        ax.plot(xs, ys, color="black", lw=1, ls=":", zorder=2)
        for n in sweep:
            ax.annotate(f"w={result['runs'][n]['info']['hyper_weight']:g}", pts[n], fontsize=7,
                        xytext=(5, -10), textcoords="offset points")
    xs, ys = zip(*pts.values())
    lims = [_limits(xs), _limits(ys)]
    ax.set_xlim(*lims[0])
    ax.set_ylim(*lims[1])
    ax.set_xlabel(_anchor_lines(ax, result, x_axis, "x", lims[0]))
    ax.set_ylabel(_anchor_lines(ax, result, y_axis, "y", lims[1]))
    ax.set_title(f"trade-off: {x_axis} vs {y_axis} (higher is better on both)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(handles=_legend(result, pts, bool(sweep)), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _limits(values) -> tuple[float, float]:
    """Data range with 0 included and 10 % padding."""
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    pad = 0.1 * (hi - lo or 10.0)
    return lo - pad, hi + pad


def _legend(result: dict, pts: dict, sweep: bool) -> list:
    infos = [result["runs"][n]["info"] for n in pts]
    handles = [Line2D([], [], ls="", marker="s", markersize=8, color=plt.cm.tab10(i), label=s)
               for i, s in enumerate(SCHEMES) if any(f["scheme"] == s for f in infos)]
    for w, m in WEIGHTING_MARKERS.items():
        if any(f["weighting"] == w and f["role"] == "grid" for f in infos):
            handles.append(Line2D([], [], ls="", marker=m, markersize=7, color="grey",
                                  markerfacecolor="white" if w == "fixed" else "grey", label=f"{w} weighting"))
    for role in ("sweep", "recipe", "baseline"):
        if any(f["role"] == role for f in infos):
            handles.append(Line2D([], [], ls="", marker=ROLE_MARKERS[role], markersize=7, color="grey",
                                  label={"sweep": "sweep point", "recipe": "recipe", "baseline": "no alignment"}[role]))
    if sweep:
        handles.append(Line2D([], [], color="black", lw=1, ls=":", label="hyper-weight sweep"))
    return handles


def _anchor_lines(ax, result: dict, axis: str, which: str, lims: tuple[float, float]) -> str:
    """Lines at score 0 and 100 of `axis` where they fall on the chart; returns the axis label,
    which names both anchors."""
    specs = result["score_config"]["metrics"].get(axis, {})
    used = [s for m, s in specs.items() if f"{axis}/{m}" in result["anchors"]]
    label = f"{axis} score"
    if not used:
        return label
    names = {0: sorted({_anchor_label(s[1]) for s in used}), 100: sorted({_anchor_label(s[2]) for s in used})}
    for value in (0, 100):
        if lims[0] <= value <= lims[1]:
            (ax.axvline if which == "x" else ax.axhline)(value, color="grey", lw=0.9, ls="--" if value else "-")
    return f"{label} (0 = {', '.join(names[0])}; 100 = {', '.join(names[100])})"


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
