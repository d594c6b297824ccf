"""`speechvae compare RUN... --out DIR`: evaluated runs side by side, scored (`study.score`).

Writes DIR/compare.json (every figure: run settings, raw metrics, reference rows, per-metric, per-axis
and overall scores, anchors, dropped metrics, ranking and its stability over probe seeds),
DIR/compare.md (the tables) and the figures of `study.figures`.
"""
from __future__ import annotations

import json
import os

from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.presets.alignment import weighting_of
from speechvae_jax.study import figures, score


def run_info(workdir: str) -> dict:
    """What a run is: scheme, weighting, hyper-weight, distance-matrix pooling, teacher layer, steps."""
    config = load_config(workdir)
    a = config.alignment
    aligned = a.scheme != "none"
    return {"scheme": a.scheme, "weighting": weighting_of(a) if aligned else "-",
            "hyper_weight": float(a.hyper_weight) if aligned else None,
            "pooling": (a.pooling if a.pooling != "device" else f"device/{a.get('pool_items') or 'per-device'}")
            if aligned and "mdms" in _terms(a) else "-",
            "projection": a.projection if aligned else "-",
            "schedule": a.schedule.kind if aligned else "-",
            "teacher_layer": config.teacher.layer if aligned else None,
            "num_steps": int(config.train.num_steps)}


def _terms(a) -> list[str]:
    return [k for k, w in a.term_weights.items() if w]


def load_report(workdir: str) -> dict:
    path = os.path.join(workdir, "eval", "report.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: evaluate the run first (speechvae evaluate --workdir {workdir})")
    with open(path) as f:
        return json.load(f)


def default_names(run_dirs: list[str]) -> list[str]:
    return [os.path.basename(os.path.normpath(d)) for d in run_dirs]


def compare(run_dirs: list[str], out_dir: str, *, names: list[str] | None = None,
            score_config: ConfigDict | None = None, sweep: list[str] = (), roles: dict | None = None,
            times: dict | None = None) -> dict:
    """Compare evaluated runs; returns the content of compare.json."""
    if not run_dirs:
        raise ValueError("compare: no runs given")
    names = names or default_names(run_dirs)
    if len(set(names)) != len(names):
        raise ValueError(f"compare: run names repeat ({names}); pass distinct folders")
    cfg = score.resolve_config(score_config)
    tables = {n: score.metric_table(load_report(d)) for n, d in zip(names, run_dirs)}
    infos = {n: run_info(d) for n, d in zip(names, run_dirs)}
    for (n, info), d in zip(infos.items(), run_dirs):
        info["workdir"] = os.path.abspath(d)
        info["role"] = (roles or {}).get(n) or ("baseline" if info["scheme"] == "none" else "grid")
    scored = score.score_runs(tables, cfg)
    result = {
        "runs": {n: {"info": infos[n], "metrics": tables[n], "scores": scored["runs"][n],
                     "times": _seconds((times or {}).get(n, {}))} for n in names},
        "references": score.references(tables), "anchors": scored["anchors"], "dropped": scored["dropped"],
        "axis_weights": scored["axis_weights"], "unscored_axes": scored["unscored_axes"],
        "score_config": cfg.to_dict(), "ranking": score.ranking(scored),
        "stability": score.ranking_stability(tables, cfg), "sweep": list(sweep),
    }
    os.makedirs(out_dir, exist_ok=True)
    result["plots"] = figures.write_all(result, out_dir)
    fileio.atomic_write_json(os.path.join(out_dir, "compare.json"), result, sort_keys=True)
    fileio.atomic_write_text(os.path.join(out_dir, "compare.md"), format_markdown(result))
    return json.loads(fileio.to_json(result))


def _seconds(status: dict) -> dict:
    """{stage: wall seconds, stage/cpu: CPU seconds of the process} from a run's study status."""
    out = {}
    for stage, v in status.items():
        out[stage] = round(float(v.get("seconds", 0.0)), 1)
        if "cpu_seconds" in v:
            out[f"{stage}/cpu"] = round(float(v["cpu_seconds"]), 1)
    return out


def _f(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _g(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def score_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """The summary table: settings, per-axis scores, overall, rank (and probe-seed rank range)."""
    axes = [a for a in score.AXES if any(a in r["scores"]["axes"] for r in result["runs"].values())]
    header = ["run", "scheme", "weighting", "hyper-weight", "pooling", *axes, "overall", "rank", "rank over seeds"]
    rows = []
    for rank, name in enumerate(result["ranking"], 1):
        r = result["runs"][name]
        info, sc = r["info"], r["scores"]
        span = result["stability"]["rank_range"].get(name)
        rows.append([name, info["scheme"], info["weighting"], _g(info["hyper_weight"]), info["pooling"],
                     *[_f(sc["axes"].get(a)) for a in axes], f"**{_f(sc['overall'])}**",
                     str(rank) if sc["overall"] is not None else "-",
                     f"{span[0]}-{span[1]}" if span else "-"])
    return header, rows


def metric_rows(result: dict, axis: str) -> tuple[list[str], list[list[str]]]:
    """Raw metrics of one axis: a row per run, then the reference rows."""
    metrics = sorted({m for r in result["runs"].values() for m in r["metrics"].get(axis, {})})
    header = ["run", *metrics]
    rows = [[name, *[_g(r["metrics"].get(axis, {}).get(m, {}).get("value")) for m in metrics]]
            for name, r in result["runs"].items()]
    refs = result["references"].get(axis, {})
    for row in score.REFERENCE_ROWS:
        if any(row in refs.get(m, {}) for m in metrics):
            rows.append([f"*{row}*", *[_g(refs.get(m, {}).get(row)) for m in metrics]])
    return header, rows


def format_markdown(result: dict) -> str:
    w = ", ".join(f"{a} {v:g}" for a, v in result["axis_weights"].items())
    out = ["# Comparison", "",
           "Scores: each metric normalised to 0 (zero anchor) .. 100 (hundred anchor), direction-aware, "
           f"averaged per axis, then over axes with weights ({w}). Anchors per metric below; the "
           "definition is in docs/study.md.", ""]
    header, rows = score_rows(result)
    out += ["## Overall", "", *_table(header, rows), ""]
    st = result["stability"]
    if st["seeds"]:
        out += [f"Ranking over probe seeds {st['seeds']}: mean Kendall tau {_f(st['kendall_tau_mean'], 2)}, "
                f"the first run is the same in {_f(100 * (st['top_agreement'] or 0), 0)} % of seeds.", ""]
    if result["sweep"]:
        out += ["Hyper-weight sweep: " + ", ".join(
            f"{n} ({_g(result['runs'][n]['info']['hyper_weight'])})" for n in result["sweep"]), ""]
    for axis in score.AXES:
        if any(axis in r["metrics"] for r in result["runs"].values()):
            header, rows = metric_rows(result, axis)
            out += [f"## {axis.capitalize()} metrics", "", *_table(header, rows), ""]
    out += ["## Anchors", "", *_table(["metric", "zero", "hundred", "score 0 at", "score 100 at"], [
        [name, str(spec[1]), str(spec[2]), _g(result["anchors"][f"{axis}/{m}"][0]),
         _g(result["anchors"][f"{axis}/{m}"][1])]
        for axis, ms in result["score_config"]["metrics"].items() for m, spec in ms.items()
        if (name := f"{axis}/{m}") in result["anchors"]]), ""]
    if result["dropped"]:
        out += ["Left out of the score: " + "; ".join(f"{k}: {v}" for k, v in sorted(result["dropped"].items())), ""]
    timed = {n: r["times"] for n, r in result["runs"].items() if r["times"]}
    if timed:
        stages = sorted({s for t in timed.values() for s in t if not s.endswith("/cpu")})
        rows = [[n, *[f"{_f(t.get(s), 0)} ({_f(t.get(s + '/cpu'), 0)})" for s in stages],
                 _f(sum(t.get(s, 0.0) for s in stages), 0)] for n, t in timed.items()]
        out += ["## Time per stage: wall seconds (CPU seconds of the process)", "",
                *_table(["run", *stages, "total wall"], rows), ""]
    out += [f"![{p}]({p})" for p in result.get("plots", [])]
    return "\n".join(out) + "\n"
