"""The overall score of a study: metrics normalised between reference rows, per axis, then overall.

For a metric m with direction d ("higher" or "lower" is better) and two anchors, zero (score 0) and
hundred (score 100), a run's value v scores

    score = 100 * (v - zero) / (hundred - zero)

which is direction-aware: hundred must be better than zero in direction d (else the metric is left
out of the score and listed with the reason), and a run better than the hundred anchor scores above
100, one worse than the zero anchor below 0. Anchors name reference rows: "ground_truth", "teacher",
"log_mel", "resynthesis" (read from the reports), "run:NAME" (another run of the comparison, e.g. the
VAE without alignment) or a number (an ideal value, e.g. STOI 1). An axis score is the mean of its
metrics' scores that the run has; the overall score is the mean of the axis scores weighted by
`axis_weights` (axes of weight 0 ignored), None when a weighted axis has no score. Per-axis scores
are always reported beside it. Probe metrics carry one value per seed, so the ranking is recomputed
per probe seed (`ranking_stability`).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from ml_collections import ConfigDict

AXES = ("reconstruction", "understanding", "generation")
DIRECTIONS = ("higher", "lower")
REFERENCE_ROWS = ("ground_truth", "teacher", "log_mel", "resynthesis")
BASELINE = "run:none"
GENERATED_ROW = "tts"   # the run's own row in a report's generation summary (evaluate.generation.ROWS)


def default_score_config() -> ConfigDict:
    """Metrics (direction, zero anchor, hundred anchor) per axis and the axis weights."""
    return ConfigDict({
        "axis_weights": {"reconstruction": 1.0, "understanding": 1.0, "generation": 1.0},
        "metrics": {
            "reconstruction": {
                "pesq_wb": ("higher", BASELINE, 4.64), "stoi": ("higher", BASELINE, 1.0),
                "mel_distance": ("lower", BASELINE, 0.0), "speaker_sim": ("higher", BASELINE, 1.0),
                "wer": ("lower", BASELINE, "ground_truth"), "dnsmos_ovrl": ("higher", BASELINE, "ground_truth")},
            "understanding": {
                "phoneme_frame/linear": ("higher", "log_mel", "teacher"),
                "phoneme_ctc/mlp": ("lower", "log_mel", "teacher"),
                "speaker_id/linear": ("higher", "log_mel", "teacher"),
                "keyword/linear": ("higher", "log_mel", "teacher")},
            "generation": {
                "wer": ("lower", BASELINE, "ground_truth"), "speaker_sim": ("higher", BASELINE, "ground_truth"),
                "dnsmos_ovrl": ("higher", BASELINE, "ground_truth")},
        },
    })


def resolve_config(overrides: ConfigDict | dict | None = None) -> ConfigDict:
    """The default score config with `overrides` applied: axis_weights key by key, metrics axis by
    axis (an axis given in overrides.metrics replaces that axis's metric list)."""
    cfg = default_score_config()
    given = overrides.to_dict() if isinstance(overrides, ConfigDict) else dict(overrides or {})
    unknown = set(given) - {"axis_weights", "metrics"}
    if unknown:
        raise ValueError(f"score config: unknown keys {sorted(unknown)} (axis_weights, metrics)")
    for axis, w in given.get("axis_weights", {}).items():
        if axis not in AXES:
            raise ValueError(f"score.axis_weights: unknown axis {axis!r}; one of {AXES}")
        cfg.axis_weights[axis] = float(w)
    for axis, metrics in given.get("metrics", {}).items():
        cfg.metrics[axis] = ConfigDict({m: tuple(spec) for m, spec in metrics.items()})
    return cfg


# ---- metric tables from reports ----------------------------------------------------------------

def _probe_values(res: dict, head: str) -> tuple[float | None, list[float]]:
    """(mean, per-seed values) of one probe result's head, or (None, [])."""
    h = res.get("heads", {}).get(head) if isinstance(res, dict) else None
    if not h:
        return None, []
    key = "error_rate" if res.get("metric") == "per" else "accuracy"
    return float(h["value_mean"]), [float(r[key]) for r in h.get("runs", []) if key in r]


def metric_table(report: dict) -> dict:
    """{axis: {metric: {"value": v, "seeds": [...], <reference row>: v, <row>_seeds: [...]}}} of a
    report (evaluate.report schema; generation: report["generation"]["summary"] = {row: {metric: v}}
    with the run's own row GENERATED_ROW)."""
    out: dict = {}
    rec = report.get("reconstruction", {}).get("summary")
    if rec:
        rows = out.setdefault("reconstruction", {})
        for m, v in rec.get("recon", {}).items():
            rows.setdefault(m, {})["value"] = v
        for m, v in rec.get("ground_truth", {}).items():
            rows.setdefault(m, {})["ground_truth"] = v
    for task, by_fs in report.get("understanding", {}).items():
        heads = {h for res in by_fs.values() for h in res.get("heads", {})}
        for head in sorted(heads):
            row = out.setdefault("understanding", {}).setdefault(f"{task}/{head}", {})
            for fs, res in by_fs.items():
                mean, seeds = _probe_values(res, head)
                if mean is None:
                    continue
                if fs == "latent":
                    row["value"], row["seeds"] = mean, seeds
                else:
                    row[fs], row[f"{fs}_seeds"] = mean, seeds
    gen = report.get("generation", {}).get("summary")
    if gen:
        rows = out.setdefault("generation", {})
        for row_name, metrics in gen.items():
            for m, v in metrics.items():
                if isinstance(v, (int, float)):
                    rows.setdefault(m, {})["value" if row_name == GENERATED_ROW else row_name] = v
    return out


def references(tables: dict[str, dict]) -> dict:
    """{axis: {metric: {row: value, row_seeds: [...]}}}: the reference rows found in any run's table
    (they are the same data in every report of a study; the first report that has a row gives it)."""
    out: dict = {}
    for table in tables.values():
        for axis, metrics in table.items():
            for m, row in metrics.items():
                ref = out.setdefault(axis, {}).setdefault(m, {})
                for k, v in row.items():
                    if k != "value" and k != "seeds":
                        ref.setdefault(k, v)
    return out


# ---- normalisation ------------------------------------------------------------------------------

def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _anchor(spec, axis: str, metric: str, tables: dict, refs: dict, seed: int | None):
    """The value an anchor spec names (None when absent)."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec)
    spec = str(spec)
    if spec.startswith("run:"):
        row = tables.get(spec[4:], {}).get(axis, {}).get(metric, {})
        seeds = row.get("seeds", [])
        return seeds[seed] if seed is not None and seed < len(seeds) else row.get("value")
    if spec not in REFERENCE_ROWS:
        raise ValueError(f"score anchor {spec!r}: a number, run:NAME or one of {REFERENCE_ROWS}")
    row = refs.get(axis, {}).get(metric, {})
    seeds = row.get(f"{spec}_seeds", [])
    return seeds[seed] if seed is not None and seed < len(seeds) else row.get(spec)


def normalise(value: float, zero: float, hundred: float) -> float:
    """100 * (value - zero) / (hundred - zero)."""
    return 100.0 * (value - zero) / (hundred - zero)


def metric_scores(tables: dict, score_config: ConfigDict, seed: int | None = None) -> dict:
    """{"scores": {run: {axis: {metric: score}}}, "dropped": {axis/metric: reason}, "anchors":
    {axis/metric: (zero, hundred)}} over every run of `tables` ({run: metric_table})."""
    refs = references(tables)
    scores: dict = {run: {} for run in tables}
    dropped, anchors = {}, {}
    for axis, metrics in score_config.metrics.items():
        for metric, (direction, zero_spec, hundred_spec) in metrics.items():
            name = f"{axis}/{metric}"
            if direction not in DIRECTIONS:
                raise ValueError(f"score metric {name}: direction {direction!r} not one of {DIRECTIONS}")
            zero = _anchor(zero_spec, axis, metric, tables, refs, seed)
            hundred = _anchor(hundred_spec, axis, metric, tables, refs, seed)
            if not (_finite(zero) and _finite(hundred)):
                dropped[name] = f"anchor missing ({zero_spec}: {zero}, {hundred_spec}: {hundred})"
                continue
            better = hundred > zero if direction == "higher" else hundred < zero
            if not better:
                dropped[name] = (f"anchors inverted: {hundred_spec} ({hundred:.4g}) is not better than "
                                 f"{zero_spec} ({zero:.4g}) for a {direction}-is-better metric")
                continue
            anchors[name] = (zero, hundred)
            for run, table in tables.items():
                row = table.get(axis, {}).get(metric, {})
                seeds = row.get("seeds", [])
                v = seeds[seed] if seed is not None and seed < len(seeds) else row.get("value")
                if _finite(v):
                    scores[run].setdefault(axis, {})[metric] = normalise(v, zero, hundred)
    return {"scores": scores, "dropped": dropped, "anchors": anchors}


def overall(per_metric: dict[str, dict[str, float]], axis_weights: dict) -> dict:
    """{"axes": {axis: mean score or None}, "overall": weighted mean or None, "missing_axes": [...]}
    for one run's {axis: {metric: score}}."""
    axes = {a: (float(np.mean(list(m.values()))) if m else None) for a, m in per_metric.items()}
    weighted = {a: float(w) for a, w in axis_weights.items() if w}
    missing = [a for a in weighted if axes.get(a) is None]
    total = None if missing or not weighted else \
        sum(w * axes[a] for a, w in weighted.items()) / sum(weighted.values())
    return {"axes": axes, "overall": total, "missing_axes": missing}


def score_runs(tables: dict, score_config: ConfigDict, seed: int | None = None) -> dict:
    """Per-metric, per-axis and overall scores of every run, the dropped metrics and the anchors.
    An axis that no run has a score on (not evaluated, e.g. generation in a two-axis study) is left
    out of the overall score and listed in "unscored_axes"."""
    ms = metric_scores(tables, score_config, seed)
    scored_axes = {a for per in ms["scores"].values() for a in per}
    weights = {a: float(w) for a, w in score_config.axis_weights.items() if a in scored_axes}
    runs = {run: {"metrics": per, **overall(per, weights)} for run, per in ms["scores"].items()}
    return {"runs": runs, "dropped": ms["dropped"], "anchors": ms["anchors"], "axis_weights": weights,
            "unscored_axes": sorted(a for a, w in score_config.axis_weights.items() if w and a not in scored_axes)}


def ranking(scored: dict) -> list[str]:
    """Run names by decreasing overall score (runs without one last, in name order)."""
    runs = scored["runs"]
    return sorted(runs, key=lambda r: (runs[r]["overall"] is None, -(runs[r]["overall"] or 0.0), r))


def _kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall's tau between two orderings of the same names."""
    pos_b = {n: i for i, n in enumerate(b)}
    pairs = list(itertools.combinations(a, 2))
    if not pairs:
        return 1.0
    concordant = sum(1 if pos_b[x] < pos_b[y] else -1 for x, y in pairs)
    return concordant / len(pairs)


def ranking_stability(tables: dict, score_config: ConfigDict) -> dict:
    """The ranking recomputed with each probe seed's values (runs and probe reference rows alike):
    {"seeds", "rankings" {seed: [...]}, "rank_range" {run: [best, worst]}, "kendall_tau_mean" (over
    pairs of seeds), "top_agreement" (fraction of seeds whose first run is the mean ranking's)}."""
    n_seeds = max((len(row.get("seeds", [])) for t in tables.values() for m in t.values() for row in m.values()),
                  default=0)
    scored = score_runs(tables, score_config)
    ranked = [r for r in ranking(scored) if scored["runs"][r]["overall"] is not None]
    per_seed = {}
    for s in range(n_seeds):
        scored = score_runs(tables, score_config, seed=s)
        per_seed[s] = [r for r in ranking(scored) if scored["runs"][r]["overall"] is not None]
    rank_range = {r: [min(order.index(r) + 1 for order in per_seed.values() if r in order),
                      max(order.index(r) + 1 for order in per_seed.values() if r in order)]
                  for r in ranked if all(r in order for order in per_seed.values()) and per_seed}
    common = [o for o in per_seed.values() if set(o) == set(ranked)]
    taus = [_kendall_tau(a, b) for a, b in itertools.combinations(common, 2)]
    return {"seeds": list(per_seed), "rankings": per_seed, "rank_range": rank_range,
            "kendall_tau_mean": float(np.mean(taus)) if taus else None,
            "top_agreement": (float(np.mean([o[0] == ranked[0] for o in per_seed.values() if o]))
                              if per_seed and ranked else None)}
