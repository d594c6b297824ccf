"""Speech from a TTS run: its EMA DiT, the VAE run that exported its latents, and the sampler.

    speechvae generate sample --workdir TTSRUN --text "..." --prompt WAV --out OUT.wav

is `synthesize(...)`. A `Synthesizer` turns sampling rows (generate/prompt.py) into latents and
audio: rows are generated `sample.batch_size` at a time, padded to a multiple of ROW_BUCKET frames
(a handful of compilations), de-normalised, decoded canonically (export/codec.py) prompt included,
and the target's samples cut out.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
from absl import logging
from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.data.audio import load_audio
from speechvae_jax.engine.checkpoint import Checkpoints
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.export import codec
from speechvae_jax.generate import prompt as prompt_lib
from speechvae_jax.generate.dit import make_dit
from speechvae_jax.generate.text import check_text_config
from speechvae_jax.generate.tts import make_sampler
from speechvae_jax.inference import InferenceModel, load_for_inference

ROW_BUCKET = 64


def stats_of(config: ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """(latent_mean [L], latent_std [L]) float32 that a run's config carries."""
    return np.asarray(config.data.latent_mean, np.float32), np.asarray(config.data.latent_std, np.float32)


def _stack_rows(rows: list[dict], batch: int) -> dict:
    """Rows -> arrays [batch, F] / [batch, F, L], F a multiple of ROW_BUCKET; missing rows repeat row 0
    (their output is discarded)."""
    frames = -(-max(r["mask"].sum() for r in rows) // ROW_BUCKET) * ROW_BUCKET
    full = rows + [rows[0]] * (batch - len(rows))
    out = {}
    for key in ("cond", "prompt_mask", "mask", "tokens"):
        first = full[0][key]
        arr = np.zeros((batch, frames) + first.shape[1:], first.dtype)
        for i, r in enumerate(full):
            n = min(len(r[key]), frames)
            arr[i, :n] = r[key][:n]
        out[key] = arr
    return out


class Synthesizer:
    """Generation with a TTS run's config and DiT params, decoding through `vae`."""

    def __init__(self, config: ConfigDict, params: Any, vae: InferenceModel):
        self.config, self.params, self.vae = config, params, vae
        self.vocab = check_text_config(config.text)
        self.stats = stats_of(config)
        self.model = make_dit(config.model, self.vocab.size)
        self._sampler = make_sampler(self.model, config.sample)
        self._decoder_context = None

    def latents(self, rows: list[dict], *, seed: int = 0, cfg_scale: float | None = None,
                params: Any = None) -> list[np.ndarray]:
        """Whole sequences (prompt + generated, de-normalised) float32 [P_i + T_i, L], one per row.

        Rows are processed in chunks of `sample.batch_size`; chunk k uses key fold_in(seed, k).
        """
        params = self.params if params is None else params
        longest, trained = max(r["span"][1] for r in rows), int(self.config.data.max_frames)
        if longest > trained:
            logging.warning("generate: rows of up to %d frames (prompt + target) exceed the %d-frame "
                            "training examples; speech past frame %d may degrade (shorten the prompt)",
                            longest, trained, trained)
        scale = float(self.config.sample.cfg_scale if cfg_scale is None else cfg_scale)
        batch = int(self.config.sample.batch_size)
        mean, std = self.stats
        out = []
        for k, lo in enumerate(range(0, len(rows), batch)):
            chunk = rows[lo:lo + batch]
            arrays = _stack_rows(chunk, batch)
            rng = jax.random.fold_in(jax.random.PRNGKey(seed), k)
            z = np.asarray(self._sampler(params, rng, arrays["cond"], arrays["prompt_mask"], arrays["tokens"],
                                         arrays["mask"], jnp.float32(scale)))
            out += [z[i, :r["span"][1]] * std + mean for i, r in enumerate(chunk)]
        return out

    def decode(self, latents: list[np.ndarray]) -> list[np.ndarray]:
        """De-normalised latents [T_i, L] -> audio float32 [T_i * hop] (canonical decoding)."""
        if self._decoder_context is None:
            self._decoder_context = codec.decoder_context(self.vae)
        return codec.decode_utterances(self.vae, latents, self._decoder_context, codec.Buckets())

    def speech(self, rows: list[dict], **kwargs) -> list[np.ndarray]:
        """The generated target of each row as audio float32 [T_i * hop] (decoded with its prompt)."""
        audio = self.decode(self.latents(rows, **kwargs))
        return [a[r["span"][0] * self.vae.hop:r["span"][1] * self.vae.hop] for a, r in zip(audio, rows)]

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """A prompt wav (float32 [N], 16 kHz) -> its latent mean [ceil(N / hop), L]."""
        context = codec.encoder_context(self.vae)
        return codec.encode_utterances(self.vae, [audio], context, codec.Buckets())[0][0]


def load_vae(config: ConfigDict) -> InferenceModel:
    """The VAE run that exported the TTS run's latents, at the exporting step (warns on a hash change)."""
    vae = load_for_inference(config.vae.workdir, int(config.vae.step) if config.vae.step >= 0 else None)
    if config.vae.hash and vae.checkpoint_hash != config.vae.hash:
        logging.warning("the VAE checkpoint %s (step %d) is not the one that exported the latents (%s)",
                        vae.checkpoint_hash, vae.step, config.vae.hash)
    return vae


def load_params(workdir: str, config: ConfigDict, step: int | None = None) -> tuple[Any, int]:
    """(EMA DiT params, step) of a TTS run's checkpoint (default: the latest)."""
    ckpts = Checkpoints(workdir, read_only=True)
    try:
        steps = ckpts.steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {ckpts.directory}")
        step = max(steps) if step is None else int(step)
        if step not in steps:
            raise ValueError(f"step {step} not in {ckpts.directory} (have {steps})")
        model = make_dit(config.model, check_text_config(config.text).size)
        f = int(config.data.max_frames)
        args = (jnp.zeros((1, f, config.model.latent_dim)),) * 2 + (
            jnp.zeros((1, f), jnp.int32), jnp.zeros(1), jnp.ones((1, f), bool), jnp.zeros(1, bool), jnp.zeros(1, bool))
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args)["params"]
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = {"ema": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)}
        return ckpts.restore_subtree(step, target)["ema"], step
    finally:
        ckpts.close()


def load_synthesizer(workdir: str, step: int | None = None) -> Synthesizer:
    """A trained TTS run (EMA weights at `step`, default latest) with its VAE."""
    config = load_config(workdir)
    params, _ = load_params(workdir, config, step)
    return Synthesizer(config, params, load_vae(config))


def _transcript_of(prompt_wav: str) -> str:
    for path in (os.path.splitext(prompt_wav)[0] + ".txt", prompt_wav + ".txt"):
        if os.path.isfile(path):
            with open(path) as f:
                return f.read().strip()
    raise ValueError(f"the prompt needs its transcript: pass prompt_text or put it in "
                     f"{os.path.splitext(prompt_wav)[0]}.txt")


def synthesize(workdir: str, text: str, prompt_wav: str, out_wav: str, *, prompt_text: str | None = None,
               step: int | None = None, seed: int = 0, nfe: int | None = None,
               cfg_scale: float | None = None) -> dict:
    """Say `text` in the voice of `prompt_wav` (its transcript: `prompt_text`, or a .txt beside it) at the
    prompt's speaking rate; writes a 16-bit 16 kHz wav. -> {"path", "seconds", "frames", "step"}."""
    config = load_config(workdir)
    if nfe is not None:
        config.sample.nfe = int(nfe)
    params, step = load_params(workdir, config, step)
    synth = Synthesizer(config, params, load_vae(config))
    transcript = _transcript_of(prompt_wav) if prompt_text is None else prompt_text
    prompt = prompt_lib.prompt_record(synth.encode(load_audio(prompt_wav)), transcript, config.text)
    target = prompt_lib.target_from_text(text, prompt, config.text)
    row = prompt_lib.compose(prompt, target, config.text, synth.vocab, synth.stats)
    audio = synth.speech([row], seed=seed, cfg_scale=cfg_scale)[0]
    out = fileio.require_local(out_wav, "generate sample")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    sf.write(out, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return {"path": out, "seconds": audio.size / SAMPLE_RATE, "frames": target.num_frames, "step": step}
