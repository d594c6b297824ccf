"""`speechvae evaluate`: reconstruction and understanding of a run, written to RUN/eval/.

Outputs: `report.json` (every figure, settings, versions, seeds, dataset ids, checkpoint step),
`report.md` (tables), PNG plots, and `parts/*.json` caches: a finished part whose key (checkpoint,
data, protocol) still matches is reused on re-run, so an interrupted evaluation resumes."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence

import jax
import tqdm
from absl import logging

from speechvae_jax import fileio
from speechvae_jax.engine import multihost
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.evaluate import features, plots, reconstruction, scorers, understanding
from speechvae_jax.export import writer
from speechvae_jax.inference import load_for_inference
from speechvae_jax.teachers import load_teacher

PROTOCOL = 1                 # bump when a setting below changes: cached parts are then recomputed
RECON_SPLIT = "test"
RECON_UTTERANCES = 16        # evenly spaced over the test split
SPECTROGRAM_EXAMPLES = 3
PROBE_UTTERANCES = {"train": 300, "valid": 100, "test": 100, "keywords_train": 400, "keywords_test": 200}
FEATURE_SETS = ("latent", "teacher", "log_mel")
RECON_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel_distance", "mrstft_distance",
                 "speaker_sim", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "wer", "cer")
AXES = ("reconstruction", "understanding")


def cached(path: str, key: dict, compute: Callable[[], dict]) -> dict:
    """The `result` stored at path if its `key` equals key (after a JSON round trip), else
    compute(), store {key, result} atomically and return it."""
    key = json.loads(fileio.to_json(key))
    if os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
            if stored.get("key") == key:
                logging.info("reusing %s", path)
                return stored["result"]
        except (OSError, ValueError):
            logging.warning("unreadable cache %s; recomputing", path)
    result = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.atomic_write_json(path, {"key": key, "result": result}, sort_keys=True)
    return json.loads(fileio.to_json(result))


def _ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class _Splits:
    """Lazily loaded, capped utterance lists per split (see PROBE_UTTERANCES / RECON_UTTERANCES)."""

    def __init__(self, data: str):
        self.data, self._records, self.info = data, {}, {}

    def get(self, split: str, limit: int) -> list[dict]:
        if (split, limit) not in self._records:
            records, info = features.select_utterances(self.data, split, limit)
            info["ids_sha256_16"] = _ids_hash([r["id"] for r in records])
            self._records[(split, limit)] = records
            self.info[f"{split}@{limit}"] = info
        return self._records[(split, limit)]


# ----------------------------------------------------------------------------------------------
# Reconstruction.

def _reconstruction(model, splits: _Splits, eval_dir: str, run_key: dict) -> dict:
    key = {**run_key, "split": RECON_SPLIT, "utterances": RECON_UTTERANCES}

    def compute():
        records = splits.get(RECON_SPLIT, RECON_UTTERANCES)
        if not records:
            raise ValueError(f"{splits.data}: split {RECON_SPLIT!r} has no readable utterances")
        t0 = time.time()
        mine = multihost.share(records)  # each process scores its share; all get every result
        per_utt = reconstruction.score_records(mine, reconstruction.resynthesize(model, mine))
        by_id = {r["id"]: r for part in multihost.gather_json(eval_dir, "reconstruction", per_utt) for r in part}
        per_utt = [by_id[r["id"]] for r in records]
        spec_png = os.path.join(eval_dir, "spectrograms.png")
        if jax.process_index() == 0:
            examples = records[:SPECTROGRAM_EXAMPLES]
            resynth = reconstruction.resynthesize(model, examples)
            plots.spectrogram_pairs([(r["id"], r["audio"], resynth[r["id"]]) for r in examples], spec_png)
        return {"summary": scorers.aggregate(per_utt), "per_utterance": per_utt,
                "datasets": {RECON_SPLIT: splits.info[f"{RECON_SPLIT}@{RECON_UTTERANCES}"]},
                "ids": [r["id"] for r in records], "seconds_audio": float(sum(r["seconds"] for r in per_utt)),
                "wall_seconds": time.time() - t0, "plots": [os.path.basename(spec_png)]}

    return cached(os.path.join(eval_dir, "parts", "reconstruction.json"), key, compute)


# ----------------------------------------------------------------------------------------------
# Understanding.

def _teacher_source(config, hop: int) -> tuple[Callable | None, str, str]:
    """(extractor of feature items from records or None, teacher identity, skip reason)."""
    path = config.teacher.path if "teacher" in config else ""
    if not path or not os.path.isdir(path):
        return None, "", f"teacher path {path!r} not found"

    teacher = load_teacher(path)
    layer = config.teacher.layer
    return (lambda records: features.teacher_items(teacher, layer, records, hop)), teacher.identity, ""


def _export_dir(workdir: str, model, data: str, split: str, records: list[dict]) -> str:
    """An export of `split` by this checkpoint: RUN/export/<split> when its manifest names this
    checkpoint, else RUN/eval/latents/<split>-<hash>-<count>, exported now with
    `export.writer.export_model` for the selected records only (resumable like any export)."""
    full = os.path.join(workdir, "export", split)
    manifest = os.path.join(full, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            ckpt = json.load(f).get("checkpoint", {})
        if ckpt.get("hash") == model.checkpoint_hash:
            return full
        logging.warning("%s was exported from step %s, not this checkpoint (step %d); exporting the "
                        "evaluation subset again", full, ckpt.get("step"), model.step)
    out = os.path.join(workdir, "eval", "latents", f"{split}-{model.checkpoint_hash[:12]}-{len(records)}")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        logging.info("exporting latents of %d %r utterances to %s", len(records), split, out)
        writer.export_model(model, records, out, source_spec=data, split=split)
    return out


def _understanding(workdir: str, model, config, splits: _Splits, eval_dir: str, run_key: dict) -> dict:
    teacher_fn, teacher_id, teacher_skip = _teacher_source(config, model.hop)
    extractors = {
        "latent": lambda split, recs: _latent(workdir, model, splits.data, split, recs),
        "teacher": (lambda split, recs: teacher_fn(recs)) if teacher_fn else None,
        "log_mel": lambda split, recs: features.log_mel_items(recs, model.hop),
    }
    identity = {"latent": {"step": run_key["step"], "checkpoint_hash": run_key["checkpoint_hash"]},
                "teacher": {"teacher": teacher_id, "layer": config.teacher.layer if teacher_fn else None},
                "log_mel": {"mel": {**features.MEL, "hop": model.hop}}}
    items_cache: dict = {}

    def items(fs: str, split: str) -> list[dict]:
        if (fs, split) not in items_cache:
            recs = splits.get(split, PROBE_UTTERANCES[split])
            items_cache[(fs, split)] = extractors[fs](split, recs)
        return items_cache[(fs, split)]

    def part(fs: str, task: str) -> dict:
        spec = understanding.TASKS[task]
        if extractors[fs] is None:
            return {"task": task, "metric": spec["metric"], "skipped": teacher_skip}
        key = {"data": splits.data, "feature_set": fs, **identity[fs], "task": spec, "protocol": PROTOCOL,
               "utterances": {s: PROBE_UTTERANCES[s] for s in (spec["train"], spec["test"])},
               "seeds": list(understanding.SEEDS), "heads": list(understanding.HEADS)}
        path = os.path.join(eval_dir, "parts", "understanding", f"{fs}__{task}.json")
        return cached(path, key, lambda: _run_task(task, fs, spec, items, splits, model.hop))

    jobs = [(fs, task) for task in understanding.TASKS for fs in FEATURE_SETS]
    if jax.process_count() > 1:
        # the latent exports are collective: all processes make them first, then each runs its share of
        # the probes (their results land in parts/), and every process reads all of them back below
        for split in sorted({understanding.TASKS[t][k] for _, t in jobs for k in ("train", "test")}):
            try:
                records = splits.get(split, PROBE_UTTERANCES[split])
            except (ValueError, OSError, KeyError):  # a split the source lacks: its probes report the skip
                continue
            _export_dir(workdir, model, splits.data, split, records)
        for fs, task in tqdm.tqdm(multihost.share(jobs), desc="understanding probes (this process)", unit="probe"):
            part(fs, task)
        multihost.sync("evaluate: understanding probes done")
    out: dict = {}
    for fs, task in tqdm.tqdm(jobs, desc="understanding probes", unit="probe"):
        out.setdefault(task, {})[fs] = part(fs, task)
    return out


def _latent(workdir: str, model, data: str, split: str, records: list[dict]) -> list[dict]:
    got, missing = features.latent_items(_export_dir(workdir, model, data, split, records), records)
    if missing:
        logging.warning("%d utterances of %r missing from the export (skipped): %s", len(missing), split,
                        missing[:5])
    return got


def _run_task(task: str, fs: str, spec: dict, items: Callable, splits: _Splits, hop: int) -> dict:
    """One probe part; a split the data source lacks makes it a reported skip."""
    t0 = time.time()
    try:
        train, test = items(fs, spec["train"]), items(fs, spec["test"])
    except (ValueError, OSError, KeyError) as e:
        logging.warning("%s on %s skipped: %s", task, fs, e)
        return {"task": task, "metric": spec["metric"], "skipped": f"data unavailable: {e}"}
    res = understanding.run_task(task, train, test, hop=hop)
    res["wall_seconds"] = time.time() - t0
    res["datasets"] = {s: splits.info[f"{s}@{PROBE_UTTERANCES[s]}"] for s in (spec["train"], spec["test"])}
    return res


# ----------------------------------------------------------------------------------------------
# Report.

def evaluate(workdir: str, axes: Sequence[str] = AXES, data: str | None = None) -> dict:
    """Evaluate run `workdir` on `axes` with data source `data` (default: the run's
    config.data.source). Writes RUN/eval/{report.json, report.md, *.png}; returns the report.
    With several processes (a shared file system) each scores its share of the reconstructions and
    runs its share of the probes; process 0 writes the report (the others return it without plots)."""
    unknown = [a for a in axes if a not in AXES]
    if unknown:
        raise ValueError(f"unknown evaluation axes {unknown}; choose from {AXES}")
    fileio.require_local(workdir, "evaluate (RUN/eval)")
    config = load_config(workdir)
    data = data or config.data.source
    model = load_for_inference(workdir)
    eval_dir = os.path.join(workdir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    run_key = {"step": model.step, "checkpoint_hash": model.checkpoint_hash, "data": data,
               "protocol": PROTOCOL}
    splits = _Splits(data)
    report: dict = {
        "schema_version": 1,
        "run": {"workdir": os.path.abspath(workdir), "step": model.step,
                "checkpoint_hash": model.checkpoint_hash, "data": data,
                "alignment": config.alignment.to_dict() if "alignment" in config else None,
                "teacher": config.teacher.to_dict() if "teacher" in config else None},
        "versions": {**scorers.versions(), "python": platform.python_version()},
        "settings": settings(),
        "axes": list(axes),
    }
    if "reconstruction" in axes:
        report["reconstruction"] = _reconstruction(model, splits, eval_dir, run_key)
    if "understanding" in axes:
        report["understanding"] = _understanding(workdir, model, config, splits, eval_dir, run_key)
    report["datasets"] = _datasets(report)
    if jax.process_index() != 0:  # every process took part; process 0 writes
        return report
    report["plots"] = _plots(report, eval_dir)
    fileio.atomic_write_json(os.path.join(eval_dir, "report.json"), report, sort_keys=True)
    with open(os.path.join(eval_dir, "report.md"), "w") as f:
        f.write(format_markdown(report))
    logging.info("evaluation written to %s", eval_dir)
    return report


def settings() -> dict:
    """The fixed protocol, recorded in every report."""
    return {
        "protocol": PROTOCOL, "sample_rate": scorers.SAMPLE_RATE,
        "resampler": "none in evaluation (sources deliver 16 kHz via data.audio, soxr); pystoi "
                     "resamples to 10 kHz internally; PESQ nb and wb both at fs=16000",
        "dtype": "float32 audio; float64 inside PESQ/STOI/SI-SDR",
        "latent": "posterior mean", "bucket_samples": features.BUCKET_SAMPLES,
        "reconstruction": {"split": RECON_SPLIT, "utterances": RECON_UTTERANCES,
                           "mrstft_fft_sizes": list(scorers.signal.MRSTFT_FFT_SIZES),
                           "mel_distance": "losses.spectral.mel_distance defaults (80 mels, n_fft 1024, hop 256)",
                           "spectral_trim_samples": scorers.signal.TRIM_SAMPLES},
        "understanding": {"utterances": PROBE_UTTERANCES, "tasks": understanding.TASKS, "log_mel": features.MEL,
                          "heads": list(understanding.HEADS), "seeds": list(understanding.SEEDS),
                          "feature_sets": list(FEATURE_SETS)},
    }


def _datasets(report: dict) -> dict:
    """{split: selection info (counts, skips, ids hash)} gathered from every part."""
    parts = [report.get("reconstruction", {})]
    parts += [r for by_fs in report.get("understanding", {}).values() for r in by_fs.values()]
    return {split: info for part in parts for split, info in part.get("datasets", {}).items()}


def _plots(report: dict, eval_dir: str) -> list[str]:
    names = list(report.get("reconstruction", {}).get("plots", []))
    rec = report.get("reconstruction", {}).get("summary")
    if rec:
        groups = {m: {"resynthesis": rec["recon"][m]} for m in RECON_METRICS if m in rec["recon"]}
        for m in groups:
            if m in rec["ground_truth"]:
                groups[m]["ground truth"] = rec["ground_truth"][m]
        if groups:
            names.append(os.path.basename(plots.metric_bars(
                groups, os.path.join(eval_dir, "reconstruction_bars.png"), "reconstruction (test split)")))
    und = report.get("understanding")
    if und:
        groups, errs = {}, {}
        for task, by_fs in und.items():
            for fs, res in by_fs.items():
                for head, h in res.get("heads", {}).items():
                    label = f"{task} {res['metric']} ({head})"
                    groups.setdefault(label, {})[fs] = h["value_mean"]
                    errs.setdefault(label, {})[fs] = h["value_std"]
        if groups:
            names.append(os.path.basename(plots.metric_bars(
                groups, os.path.join(eval_dir, "understanding_bars.png"),
                "understanding probes (mean and std over seeds)", errs)))
    return names


def _fmt(value, std=None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if std is None else f"{value:.3f} ± {std:.3f}"


def _tables(report: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the summary tables."""
    tables = []
    rec = report.get("reconstruction", {}).get("summary")
    if rec:
        rows = [[m, _fmt(rec["recon"].get(m)), _fmt(rec["ground_truth"].get(m))]
                for m in RECON_METRICS if m in rec["recon"] or m in rec["ground_truth"]]
        n = len(report["reconstruction"]["ids"])
        tables.append((f"Reconstruction ({n} test utterances, step {report['run']['step']})",
                       ["metric", "resynthesis", "ground truth"], rows))
    und = report.get("understanding")
    if und:
        rows = []
        for task, by_fs in und.items():
            used = {h for res in by_fs.values() for h in res.get("heads", {})}
            for head in [h for h in understanding.HEADS if h in used] or ["-"]:
                row = [task, next(iter(by_fs.values()))["metric"], head]
                for fs in FEATURE_SETS:
                    res = by_fs.get(fs, {})
                    h = res.get("heads", {}).get(head)
                    row.append(_fmt(h["value_mean"], h["value_std"]) if h else "skipped")
                rows.append(row)
        tables.append((f"Understanding (mean ± std over seeds {list(understanding.SEEDS)})",
                       ["task", "metric", "head", *FEATURE_SETS], rows))
    return tables


def format_summary(report: dict) -> str:
    """Plain-text tables of the report (printed at the end of `speechvae evaluate`)."""
    lines = []
    for title, header, rows in _tables(report):
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        lines += [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                  "  ".join("-" * w for w in widths)]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
        lines.append("")
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """report.md: the tables, errors and skips, settings, versions and plots."""
    run = report["run"]
    out = [f"# Evaluation of `{run['workdir']}`", "",
           f"Checkpoint step {run['step']} (EMA params hash `{run['checkpoint_hash']}`), "
           f"data `{run['data']}`.", ""]
    for title, header, rows in _tables(report):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    rec = report.get("reconstruction", {}).get("summary")
    if rec and rec["errors"]:
        out += ["Scorer failures (utterances skipped for that scorer): "
                + ", ".join(f"{k}: {v}" for k, v in sorted(rec["errors"].items())), ""]
    skipped = [(t, fs, r["skipped"]) for t, by in report.get("understanding", {}).items()
               for fs, r in by.items() if "skipped" in r]
    if skipped:
        out += ["Skipped probes: " + "; ".join(f"{t}/{fs}: {why}" for t, fs, why in skipped), ""]
    out += ["## Settings", "", "```json", json.dumps(report["settings"], indent=1, sort_keys=True), "```", "",
            "## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted(report["versions"].items())), ""]
    out += [f"![{p}]({p})" for p in report.get("plots", [])]
    return "\n".join(out) + "\n"
