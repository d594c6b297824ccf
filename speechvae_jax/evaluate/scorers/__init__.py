"""Reconstruction scorers: one small adapter per third-party scorer, all offline, 16 kHz mono.

`score_utterance` runs every scorer on one (original, resynthesis) pair plus the non-intrusive ones
(DNSMOS, ASR, DC offset and frame-rate comb) on the original as a reference row; `aggregate` turns
per-utterance results into means (and corpus-level WER/CER as ratios of summed counts)."""
from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence

import numpy as np

from speechvae_jax.constants import SAMPLE_RATE  # noqa: F401  (scorers.SAMPLE_RATE: the rate scorers expect)
from speechvae_jax.evaluate.scorers.asr import asr_errors
from speechvae_jax.evaluate.scorers.dnsmos import dnsmos_scores
from speechvae_jax.evaluate.scorers.pesq_stoi import pesq_scores, stoi_scores
from speechvae_jax.evaluate.scorers.signal import pitch_accuracy, si_sdr, signal_defects, spectral_distances
from speechvae_jax.evaluate.scorers.speaker import speaker_similarity

PACKAGES = ("pesq", "pystoi", "speechmos", "onnxruntime", "resemblyzer", "torch", "pocketsphinx",
            "jiwer", "librosa", "soxr", "numpy", "jax")
COUNT_KEYS = ("words", "word_errors", "chars", "char_errors")

# name -> (function of (ref, est) -> dict) for the intrusive scorers.
INTRUSIVE: dict[str, Callable[[np.ndarray, np.ndarray], dict]] = {
    "pesq": pesq_scores,
    "stoi": stoi_scores,
    "si_sdr": lambda ref, est: {"si_sdr": si_sdr(ref, est)},
    "spectral": spectral_distances,
    "pitch": pitch_accuracy,
    "speaker": speaker_similarity,
}


def versions() -> dict:
    """Installed versions of every package a score depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _run(name: str, fn: Callable[[], dict], scores: dict, errors: dict) -> None:
    try:
        scores.update(fn())
    except (ValueError, RuntimeError) as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"


def score_utterance(ref: np.ndarray, rec: np.ndarray, text: str = "", *,
                    intrusive: Sequence[str] = tuple(INTRUSIVE), dnsmos_on: bool = True,
                    asr_on: bool = True) -> dict:
    """Score resynthesis rec [>=N] against original ref [N] (float, 16 kHz; rec is cut to N).

    Returns {"recon": {metric: value}, "ground_truth": {metric: value}, "errors": {scorer: message},
    "hypotheses": {"recon", "ground_truth"}}; a scorer that fails on this input is listed in errors,
    never raised. ASR runs only when text is non-empty."""
    ref = np.asarray(ref, np.float32)
    rec = np.asarray(rec, np.float32)[: len(ref)]
    if len(rec) < len(ref):
        rec = np.pad(rec, (0, len(ref) - len(rec)))
    recon, truth, errors, hyps = {}, {}, {}, {}
    for name in intrusive:
        _run(name, lambda: INTRUSIVE[name](ref, rec), recon, errors)
    _run("defects", lambda: signal_defects(rec), recon, errors)
    _run("defects_ground_truth", lambda: signal_defects(ref), truth, errors)
    if dnsmos_on:
        _run("dnsmos", lambda: dnsmos_scores(rec), recon, errors)
        _run("dnsmos_ground_truth", lambda: dnsmos_scores(ref), truth, errors)
    if asr_on and text:
        for row, audio in (("recon", rec), ("ground_truth", ref)):
            out: dict = {}
            _run(f"asr_{row}", lambda: asr_errors(audio, text), out, errors)
            if out:
                hyps[row] = out.pop("hypothesis")
                (recon if row == "recon" else truth).update(out)
    return {"recon": recon, "ground_truth": truth, "errors": errors, "hypotheses": hyps}


def aggregate(results: Sequence[dict]) -> dict:
    """Per-utterance `score_utterance` results -> {"recon": {...}, "ground_truth": {...}} with the
    mean of every metric over the utterances that have it, corpus "wer"/"cer" = summed errors /
    summed reference length, and "n_<metric>" counts; plus {"errors": {scorer: count}}."""
    out: dict = {"errors": {}}
    for r in results:
        for name in r["errors"]:
            out["errors"][name] = out["errors"].get(name, 0) + 1
    for row in ("recon", "ground_truth"):
        table, keys = {}, sorted({k for r in results for k in r[row]})
        for key in keys:
            values = [r[row][key] for r in results if key in r[row]]
            if key in COUNT_KEYS:
                table[key] = int(np.sum(values))
            else:
                table[key] = float(np.mean(values))
                table[f"n_{key}"] = len(values)
        if table.get("words"):
            table["wer"] = table["word_errors"] / table["words"]
            table["cer"] = table["char_errors"] / table["chars"]
        out[row] = table
    return out
