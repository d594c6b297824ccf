"""`speechvae decode`: exported latents back to 16-bit 16 kHz wav files with a run's EMA decoder.

Each latent [T, L] is decoded canonically (codec.decode_utterances: zero frames past the end cover
the decoder's receptive field, so the bucket does not matter) and cut to the record's
`num_samples`. Files are `OUT/<id>.wav` (characters outside [A-Za-z0-9._-] in the id become `_`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import soundfile as sf
from absl import logging
from tqdm import tqdm

from speechvae_jax import fileio
from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.export import codec
from speechvae_jax.export.reader import latent_source
from speechvae_jax.inference import load_for_inference


def wav_name(uid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", uid) + ".wav"


def decode_model_latents(model, latents_dir: str, out_dir: str, ids: Sequence[str] | None = None, *,
                         buckets: codec.Buckets = codec.Buckets(), batch_items: int = 32) -> list[str]:
    """Decode the records `ids` (default all) of an export with an `InferenceModel`; -> wav paths."""
    out_dir = fileio.require_local(out_dir, "decode")
    source = latent_source(latents_dir)
    if source.manifest["latent_dim"] != model.latent_dim or source.manifest["hop"] != model.hop:
        raise ValueError(f"{latents_dir}: latents are {source.manifest['latent_dim']}-d at hop "
                         f"{source.manifest['hop']}, the model is {model.latent_dim}-d at hop {model.hop}")
    indices = range(len(source)) if ids is None else [source.index_of(u) for u in ids]
    indices = list(indices)
    context = codec.decoder_context(model)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for lo in tqdm(range(0, len(indices), batch_items), desc="decode", unit="batch"):
        recs = [source[i] for i in indices[lo:lo + batch_items]]
        audios = codec.decode_utterances(model, [r["latent"] for r in recs], context, buckets)
        for rec, audio in zip(recs, audios):
            path = os.path.join(out_dir, wav_name(rec["id"]))
            sf.write(path, np.clip(audio[:rec["num_samples"]], -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
            paths.append(path)
    logging.info("decode: %d wav files in %s", len(paths), out_dir)
    return paths


def decode_latents(workdir: str, latents_dir: str, out_dir: str, ids: Sequence[str] | None = None,
                   step: int | None = None) -> list[str]:
    """`speechvae decode`: decode an export with the EMA model of `workdir` (default: the exporting
    checkpoint's step if the run still has it, else its latest)."""
    exported = latent_source(latents_dir).manifest["checkpoint"]
    try:
        model = load_for_inference(workdir, exported["step"] if step is None else step)
    except ValueError:
        if step is not None:
            raise
        model = load_for_inference(workdir)
    if model.checkpoint_hash != exported["hash"]:
        logging.warning("decode: %s was exported by checkpoint %s (step %d); decoding with %s (step %d)",
                        latents_dir, exported["hash"], exported["step"], model.checkpoint_hash, model.step)
    return decode_model_latents(model, latents_dir, out_dir, ids)
