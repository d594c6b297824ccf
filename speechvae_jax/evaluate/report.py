"""`speechvae evaluate`: reconstruction, understanding and generation of a run, written to RUN/eval/.

The protocol is one ConfigDict (`evaluate.protocol.default_eval_config`, presets in `configs/eval.py`).
Outputs: `report.json` (every figure, the eval config, versions, seeds, dataset ids, checkpoint step),
`report.md` (tables, named skips), `reconstruction_per_utterance.csv`, PNG plots, and
`parts/**.json` caches (`evaluate.parts`): a part whose key still matches is reused, so an
interrupted evaluation resumes, and the parts are shared out over `jax.process_count()` processes.
"""
from __future__ import annotations

import os
import platform

import jax
from absl import logging
from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.evaluate import datasets as datasets_lib
from speechvae_jax.evaluate import features, generation, markdown, plots, probe_parts, protocol, reconstruction, scorers
from speechvae_jax.evaluate.parts import barrier, cached, run_parts
from speechvae_jax.inference import load_for_inference

AXES = ("reconstruction", "understanding", "generation")
DEFAULT_AXES = ("reconstruction", "understanding")  # generation needs a TTS run (speechvae generate train)


def evaluate(workdir: str, eval_config: ConfigDict | None = None, axes=DEFAULT_AXES, data: str | None = None, *,
             tts: str | None = None, process_index: int | None = None,
             process_count: int | None = None) -> dict | None:
    """Evaluate run `workdir` on `axes` with the protocol `eval_config` (default:
    `default_eval_config()`) and data source `data` (default: eval_config.data, else the run's
    config.data.source); the generation axis uses the TTS run `tts` (default RUN/tts) trained on
    this checkpoint's latents. Every process computes its share of the parts; process 0 writes
    RUN/eval/{report.json, report.md, *.png, *.csv} and returns the report (None elsewhere).
    process_index / process_count default to jax's."""
    unknown = [a for a in axes if a not in AXES]
    if unknown:
        raise ValueError(f"unknown evaluation axes {unknown}; choose from {AXES}")
    cfg = eval_config if eval_config is not None else protocol.default_eval_config()
    protocol.check_eval_config(cfg)
    fileio.require_local(workdir, "evaluate (RUN/eval)")
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    config = load_config(workdir)
    data = data or cfg.data or config.data.source
    model = load_for_inference(workdir)
    eval_dir = os.path.join(workdir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    store = datasets_lib.Datasets(os.path.join(eval_dir, "g2p"), cfg.understanding.g2p_voice)
    run_key = {"step": model.step, "checkpoint_hash": model.checkpoint_hash, "data": data,
               "protocol": cfg.protocol}
    parts, skips, recon_sel, gen_sel = [], {}, None, None
    feats = probe_parts.Features(workdir, model, config, store)
    if "reconstruction" in axes:
        rc = cfg.reconstruction
        recon_sel = datasets_lib.Selection(data, rc.split, protocol.limit(rc.utterances), rc.selection, rc.seed,
                                           rc.balance_by if rc.selection == "balanced" else "")
        parts += reconstruction.chunk_parts(model, store, recon_sel, rc.to_dict(), eval_dir, run_key)
    if "understanding" in axes:
        probe_list, skips, exports = probe_parts.task_parts(feats, cfg, data, eval_dir)
        barrier("speechvae evaluate: planned")
        for sel in exports:  # collective: every process writes its shards
            feats.export_latents(sel)
        parts += probe_list
    if "generation" in axes:
        gen_sel = datasets_lib.Selection(data, generation.SPLIT, generation.UTTERANCES)
        feats.export_latents(gen_sel)  # collective
    results = run_parts(parts, pi, pc)
    if results is None:
        return None
    gen = None
    if gen_sel is not None:  # process 0 only: one TTS sampling pass
        records, info = store.read(gen_sel)
        gen = generation.evaluate_axis(model, config, records, feats.export_dir(gen_sel), eval_dir, run_key,
                                       tts or os.path.join(workdir, "tts"), cached)
        gen["datasets"] = {gen_sel.name: info}
    report = _assemble(results, skips, recon_sel, gen, cfg, axes, run_key, config, workdir, eval_dir)
    fileio.atomic_write_json(os.path.join(eval_dir, "report.json"), report, sort_keys=True)
    fileio.atomic_write_text(os.path.join(eval_dir, "report.md"), markdown.format_markdown(report))
    logging.info("evaluation written to %s", eval_dir)
    return report


def _assemble(results: dict, skips: dict, recon_sel, gen: dict | None, cfg: ConfigDict, axes, run_key: dict,
              config, workdir: str, eval_dir: str) -> dict:
    report: dict = {
        "schema_version": 2,
        "run": {"workdir": os.path.abspath(workdir), "step": run_key["step"],
                "checkpoint_hash": run_key["checkpoint_hash"], "data": run_key["data"],
                "alignment": config.alignment.to_dict() if "alignment" in config else None,
                "teacher": config.teacher.to_dict() if "teacher" in config else None},
        "versions": {**scorers.versions(), "python": platform.python_version()},
        "settings": settings(cfg),
        "axes": list(axes),
    }
    if recon_sel is not None:
        chunks = [results[n] for n in sorted(n for n in results if n.startswith("reconstruction/"))]
        report["reconstruction"] = reconstruction.assemble(chunks, recon_sel)
        report["reconstruction"]["csv"] = os.path.basename(reconstruction.write_per_utterance_csv(
            report["reconstruction"], os.path.join(eval_dir, "reconstruction_per_utterance.csv")))
    if "understanding" in axes:
        und: dict = {}
        for task, task_cfg in cfg.understanding.tasks.items():
            for fs in task_cfg.feature_sets or cfg.understanding.feature_sets:
                und.setdefault(task, {})[fs] = skips.get(task, {}).get(fs) or results[f"{task}/{fs}"]
        report["understanding"] = und
    if gen is not None:
        report["generation"] = gen
    report["datasets"] = _datasets(report)
    report["plots"] = _plots(report, eval_dir)
    return report


def settings(cfg: ConfigDict) -> dict:
    """The protocol of a report: the eval config and the fixed settings of the scorers."""
    return {
        "eval_config": cfg.to_dict(), "protocol": cfg.protocol, "sample_rate": scorers.SAMPLE_RATE,
        "resampler": "none in evaluation (sources deliver 16 kHz via data.audio, soxr); pystoi "
                     "resamples to 10 kHz internally; PESQ nb and wb both at fs=16000",
        "dtype": "float32 audio; float64 inside PESQ/STOI/SI-SDR",
        "latent": "posterior mean", "bucket_samples": features.BUCKET_SAMPLES,
        "reconstruction": {"mrstft_fft_sizes": list(scorers.signal.MRSTFT_FFT_SIZES),
                           "mel_distance": "losses.spectral.mel_distance defaults (80 mels, n_fft 1024, hop 256)",
                           "spectral_trim_samples": scorers.signal.TRIM_SAMPLES,
                           "dc_offset": "|mean| of each signal",
                           "pitch": {"f0": "dsp.pitch.yin, 60-500 Hz", "hop": scorers.signal.PITCH_HOP,
                                     "min_frames_voiced_in_both": scorers.signal.PITCH_MIN_FRAMES},
                           "frame_comb_db": {"harmonics_of_40_hz": list(scorers.signal.COMB_HARMONICS),
                                             "window_frame_periods": scorers.signal.COMB_PERIODS_PER_WINDOW,
                                             "statistic": "median over harmonics of LTAS peak / midpoints, dB"}},
        "understanding": {"log_mel": features.MEL},
        "generation": {"split": generation.SPLIT, "utterances": generation.UTTERANCES, "seed": generation.SEED,
                       "protocol": generation.PROTOCOL, "rows": list(generation.ROWS),
                       "prompt": "the next selected utterance of the target's speaker",
                       "duration": "prompt frames + the target's true frame count (aligned mode: its true "
                                   "phoneme timings)",
                       "speaker_sim": "to the prompt's recording",
                       "frechet": "teacher frames (run's teacher.layer, 40 Hz) vs the targets' recordings"},
    }


def _datasets(report: dict) -> dict:
    """{selection name: selection info (counts, skips, ids hash, G2P)} gathered from every part."""
    parts = [report.get("reconstruction", {}), report.get("generation", {})]
    parts += [r for by_fs in report.get("understanding", {}).values() for r in by_fs.values()]
    return {name: info for part in parts for name, info in part.get("datasets", {}).items()}


def _plots(report: dict, eval_dir: str) -> list[str]:
    names = list(report.get("reconstruction", {}).get("plots", []))
    names += [e for e in report.get("generation", {}).get("examples", []) if e.endswith(".png")]
    rec = report.get("reconstruction", {}).get("summary")
    if rec:
        groups = {m: {"resynthesis": rec["recon"][m]} for m in markdown.RECON_METRICS if m in rec["recon"]}
        for m in groups:
            if m in rec["ground_truth"]:
                groups[m]["ground truth"] = rec["ground_truth"][m]
        if groups:
            names.append(os.path.basename(plots.metric_bars(
                groups, os.path.join(eval_dir, "reconstruction_bars.png"), "reconstruction")))
    groups, errs = {}, {}
    for task, by_fs in report.get("understanding", {}).items():
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
