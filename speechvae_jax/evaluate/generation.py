"""Generation axis: a TTS trained on a run's latents says held-out test sentences in their speakers'
voices; the speech is scored like the reconstruction axis, plus a Frechet distance of teacher features.

Protocol (docs/generation.md): targets are test-split sentences (speakers never seen in training);
each target's prompt is the next selected utterance of the same speaker (targets whose speaker has no
other selected utterance are skipped and counted). The TTS row has the prompt's frames plus the
target's true frame count (and, in "aligned" mode, the target's true phoneme timings). Three rows
per target: "ground_truth" (the recording), "resynthesis" (VAE encode/decode: the TTS's ceiling)
and "tts". Metrics per row: WER / CER (pocketsphinx + jiwer, normalised as in reconstruction),
speaker similarity to the prompt's recording (resemblyzer), DNSMOS, and the Frechet distance between
the Gaussians (mean, covariance) of teacher frames of the row's speech and of the recordings.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import soundfile as sf

from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.engine.checkpoint import params_hash
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.evaluate import features, plots, reconstruction, scorers
from speechvae_jax.evaluate.scorers.asr import asr_errors
from speechvae_jax.evaluate.scorers.dnsmos import dnsmos_scores
from speechvae_jax.evaluate.scorers.speaker import speaker_similarity
from speechvae_jax.export import latent_source
from speechvae_jax.export.decode import wav_name
from speechvae_jax.generate import prompt as prompt_lib
from speechvae_jax.generate import synthesis
from speechvae_jax.teachers import load_teacher

PROTOCOL = 1                 # bump when the protocol changes: cached parts are then recomputed
SPLIT = "test"
UTTERANCES = 32              # evenly spaced over the test split; each also prompts another
SEED = 0
EXAMPLES = 3                 # generated sentences written as wav files
ROWS = ("ground_truth", "resynthesis", "tts")
METRICS = ("wer", "cer", "speaker_sim", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "frechet")


def pair_up(records: list[dict]) -> tuple[list[tuple[dict, dict]], list[str]]:
    """(prompt, target) pairs: each record is a target, its prompt the next record (cyclically, in
    list order) of the same speaker. Returns (pairs, ids of targets without a prompt)."""
    pairs, alone = [], []
    for i, target in enumerate(records):
        later = records[i + 1:] + records[:i]
        prompt = next((r for r in later if r["speaker"] == target["speaker"]), None)
        if prompt is None:
            alone.append(target["id"])
        else:
            pairs.append((prompt, target))
    return pairs, alone


def generate_targets(synth, pairs: list[tuple[dict, dict]], latents: dict[str, dict], *, seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """{target id: generated audio [T * hop]} with `synth` (generate.synthesis.Synthesizer); prompts
    and targets come as latent records (export) by id, at the target's true duration."""
    text_cfg = synth.config.text
    rows = [prompt_lib.compose(latents[p["id"]], prompt_lib.target_from_record(latents[t["id"]], text_cfg),
                               text_cfg, synth.vocab, synth.stats) for p, t in pairs]
    audio = synth.speech(rows, seed=seed)
    return {t["id"]: a for (_, t), a in zip(pairs, audio)}


def _guarded(name: str, fn, scores: dict, errors: dict) -> None:
    try:
        scores.update(fn())
    except (ValueError, RuntimeError) as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"


def score_speech(audio: np.ndarray, text: str, prompt_audio: np.ndarray) -> dict:
    """One row of one target: {"scores": {wer counts, speaker_sim, dnsmos_*}, "errors", "hypothesis"};
    a failing scorer is listed in errors, never raised."""
    audio = np.asarray(audio, np.float32)
    scores, errors, asr = {}, {}, {}
    _guarded("asr", lambda: asr_errors(audio, text), asr, errors)
    hypothesis = asr.pop("hypothesis", "")
    scores.update(asr)
    _guarded("speaker", lambda: speaker_similarity(prompt_audio, audio), scores, errors)
    _guarded("dnsmos", lambda: dnsmos_scores(audio), scores, errors)
    return {"scores": scores, "errors": errors, "hypothesis": hypothesis}


def score_rows(pairs: list[tuple[dict, dict]], speech: dict[str, np.ndarray]) -> list[dict]:
    """Per-target results {"id", "prompt_id", "seconds", **score_speech} of {target id: audio}
    (cut to the recording's length); pairs hold the source records (with audio)."""
    out = []
    for prompt, target in pairs:
        n = target["audio"].size
        audio = np.asarray(speech[target["id"]], np.float32)[:n]
        out.append({"id": target["id"], "prompt_id": prompt["id"], "seconds": n / scorers.SAMPLE_RATE,
                    **score_speech(audio, target["text"], prompt["audio"])})
    return out


def summarize(results: list[dict]) -> dict:
    """Means of a row's per-target scores, corpus WER / CER, scorer error counts (scorers.aggregate)."""
    agg = scorers.aggregate([{"recon": r["scores"], "ground_truth": {}, "errors": r["errors"]} for r in results])
    return {**agg["recon"], "errors": agg["errors"]}


def gaussian(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) float64 of frames [M, D]."""
    x = np.asarray(frames, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"a Gaussian needs frames [M >= 2, D], got {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two (mean, covariance) pairs."""
    (mu_a, s_a), (mu_b, s_b) = a, b
    # Tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues) of the symmetric S_a^(1/2) S_b S_a^(1/2).
    w, v = np.linalg.eigh(s_a)
    half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(half @ s_b @ half), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2.0 * cross)


def teacher_frames(teacher, layer, speech: dict[str, np.ndarray], hop: int) -> np.ndarray:
    """Valid teacher frames [M, D] (40 Hz, features.teacher_items) of all the utterances in speech."""
    items = features.teacher_items(teacher, layer, [{"id": k, "audio": np.asarray(v, np.float32)}
                                                    for k, v in speech.items()], hop)
    return np.concatenate([it["x"][it["mask"]] for it in items])


def _load_tts(tts_workdir: str, model):
    """The TTS run's Synthesizer on `model` (the VAE), after checking it was trained on this
    checkpoint's latents; (synth, step, checkpoint hash of its EMA params)."""
    if not os.path.isfile(os.path.join(tts_workdir, "config.json")):
        raise FileNotFoundError(f"no TTS run at {tts_workdir}: train one on this run's latents with "
                                "`speechvae generate train` (docs/generation.md), or pass --tts")
    config = load_config(tts_workdir)
    if config.vae.hash != model.checkpoint_hash:
        raise ValueError(f"the TTS run {tts_workdir} was trained on latents of checkpoint {config.vae.hash} "
                         f"(step {config.vae.step}), not of the evaluated one {model.checkpoint_hash} "
                         f"(step {model.step})")
    params, step = synthesis.load_params(tts_workdir, config)
    return synthesis.Synthesizer(config, params, model), step, params_hash(params)


def evaluate_axis(model, config, records: list[dict], export_dir: str, eval_dir: str, run_key: dict,
                  tts_workdir: str, cached: Callable[[str, dict, Callable[[], dict]], dict]) -> dict:
    """The generation part of a report for `records` (test utterances with audio) whose latents are
    in `export_dir`; `cached(path, key, compute)` stores the reference rows (ground truth and
    resynthesis) and the TTS row separately under eval_dir/parts/generation/."""
    synth, tts_step, tts_hash = _load_tts(tts_workdir, model)
    pairs, alone = pair_up(records)
    if not pairs:
        raise ValueError("generation: no test speaker has two selected utterances to pair as prompt and target")
    teacher = load_teacher(config.teacher.path) if config.teacher.path else None
    layer = config.teacher.layer
    ids = [(p["id"], t["id"]) for p, t in pairs]
    real = {t["id"]: t["audio"] for _, t in pairs}
    fd_key = {"teacher": teacher.identity if teacher else None, "layer": layer if teacher else None}
    real_stats = None

    def frechet(speech: dict[str, np.ndarray]) -> float | None:
        nonlocal real_stats
        if teacher is None:
            return None
        if real_stats is None:
            real_stats = gaussian(teacher_frames(teacher, layer, real, model.hop))
        return frechet_distance(gaussian(teacher_frames(teacher, layer, speech, model.hop)), real_stats)

    def reference() -> dict:
        t0 = time.time()
        resynth = reconstruction.resynthesize(model, [t for _, t in pairs])
        rows = {"ground_truth": score_rows(pairs, real), "resynthesis": score_rows(pairs, resynth)}
        return {"rows": rows, "frechet": {"ground_truth": 0.0, "resynthesis": frechet(resynth)},
                "wall_seconds": time.time() - t0}

    base = {**run_key, "protocol": PROTOCOL, "pairs": ids, **fd_key}
    parts = os.path.join(eval_dir, "parts", "generation")
    ref = cached(os.path.join(parts, "reference.json"), base, reference)
    tts_info = {"workdir": os.path.abspath(tts_workdir), "step": tts_step, "params_hash": tts_hash,
                "text": synth.config.text.to_dict() | {"symbols": len(synth.config.text.symbols)},
                "sample": synth.config.sample.to_dict(), "seed": SEED}

    def tts() -> dict:
        t0 = time.time()
        latents = _latent_records(export_dir, [i for pair in ids for i in pair])
        speech = generate_targets(synth, pairs, latents, seed=SEED)
        gen_seconds = time.time() - t0
        examples = _write_examples(eval_dir, pairs[:EXAMPLES], real, speech)
        return {"rows": {"tts": score_rows(pairs, speech)}, "frechet": {"tts": frechet(speech)},
                "generate_seconds": gen_seconds, "wall_seconds": time.time() - t0, "examples": examples}

    gen = cached(os.path.join(parts, "tts.json"), {**base, "tts": tts_info}, tts)
    rows = {**ref["rows"], **gen["rows"]}
    fd = {**ref["frechet"], **gen["frechet"]}
    return {"summary": {row: {**summarize(rows[row]), "frechet": fd[row]} for row in ROWS},
            "per_utterance": rows, "pairs": ids, "unpaired": alone, "tts": tts_info,
            "frechet_features": fd_key, "examples": gen["examples"],
            "wall_seconds": {"reference": ref["wall_seconds"], "tts": gen["wall_seconds"],
                             "generate": gen["generate_seconds"]}}


def _latent_records(export_dir: str, ids: list[str]) -> dict[str, dict]:
    source = latent_source(export_dir)
    return {i: source[source.index_of(i)] for i in dict.fromkeys(ids)}


def _write_examples(eval_dir: str, pairs: list[tuple[dict, dict]], real: dict, speech: dict) -> list[str]:
    """The first generated sentences as eval/generation/<id>.wav, and generation_spectrograms.png
    (recording beside generated speech). Returns the file names."""
    out = os.path.join(eval_dir, "generation")
    os.makedirs(out, exist_ok=True)
    names = []
    for _, t in pairs:
        path = os.path.join(out, wav_name(t["id"]))
        sf.write(path, np.clip(speech[t["id"]], -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        names.append(os.path.relpath(path, eval_dir))
    png = plots.spectrogram_pairs([(t["id"], real[t["id"]], speech[t["id"]]) for _, t in pairs],
                                  os.path.join(eval_dir, "generation_spectrograms.png"),
                                  labels=("recording", "generated"))
    return names + [os.path.basename(png)]
