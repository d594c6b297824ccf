"""The TTS trainer on the engine: state, update, data, validation loss and generated samples.

    speechvae generate train --config configs/tts_tiny.py --latents ROOT --workdir TTSRUN

is `train(config, workdir)`: `prepare_config` fills in what the export decides (phoneme vocabulary,
latent statistics, the exporting VAE run and checkpoint), then `engine.loop.run` drives `make_task`.

state = {"step", "rng", "skipped", "skipped_run" (engine.update.base_state),
         "params": DiT params, "ema": their EMA (what sampling uses), "opt": AdamW state}
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from absl import logging
from ml_collections import ConfigDict

from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.dsp import figures
from speechvae_jax.engine import evaluators
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.engine.loop import RunResult, run
from speechvae_jax.engine.task import Task, Update
from speechvae_jax.engine.update import base_state, count_updates, guarded_update, select
from speechvae_jax.generate import data, tts
from speechvae_jax.generate import prompt as prompt_lib
from speechvae_jax.generate.dit import make_dit
from speechvae_jax.generate.synthesis import Synthesizer, load_vae, stats_of
from speechvae_jax.generate.text import Vocab, check_text_config
from speechvae_jax.train.state import ema_update

FROZEN_SECTIONS = ("model", "text", "data", "vae", "mesh")
BATCH_KEYS = ("latent", "mask", "tokens")


def find_vae_run(latents_root: str) -> str:
    """The nearest directory at or above an export root that holds a VAE run (config.json + checkpoints)."""
    path = os.path.abspath(latents_root)
    while True:
        if os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(os.path.join(path, "checkpoints")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise FileNotFoundError(f"no VAE run above {latents_root}; set config.vae.workdir")
        path = parent


def prepare_config(config: ConfigDict) -> ConfigDict:
    """A copy with the export-given fields set: text.symbols (phonemes, if empty), data.latent_mean /
    latent_std (train export), vae.workdir (if empty), vae.step and vae.hash (exporting checkpoint)."""
    config = ConfigDict(config.to_dict())
    train = data.open_split(config.data, config.data.train_split)
    manifest = train.manifest
    if manifest["latent_dim"] != config.model.latent_dim:
        raise ValueError(f"{config.data.latents}: latents are {manifest['latent_dim']}-d, "
                         f"model.latent_dim is {config.model.latent_dim}")
    if not config.text.symbols:
        config.text.symbols = list(Vocab.from_records((train[i] for i in range(len(train))), config.text.units).symbols)
    mean, std = data.latent_stats(manifest)
    config.data.latent_mean, config.data.latent_std = mean.tolist(), std.tolist()
    if not config.vae.workdir:
        config.vae.workdir = find_vae_run(config.data.latents)
    config.vae.step, config.vae.hash = int(manifest["checkpoint"]["step"]), manifest["checkpoint"]["hash"]
    check_text_config(config.text)
    return config


def make_optimizer(optim: ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW after global-norm clipping; lr warms up linearly over `warmup_steps`, then decays
    linearly to 0 over `decay_steps` (F5-TTS)."""
    warmup = max(1, int(optim.warmup_steps))
    schedule = optax.join_schedules([optax.linear_schedule(0.0, optim.lr, warmup),
                                     optax.linear_schedule(optim.lr, 0.0, max(1, int(optim.decay_steps)))],
                                    [warmup])
    parts = [optax.clip_by_global_norm(optim.clip_norm)] if optim.clip_norm > 0 else []
    parts.append(optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay))
    return optax.chain(*parts), schedule


class Modules:
    """The DiT, its optimiser and the data layout a (prepared) config describes."""

    def __init__(self, config: ConfigDict):
        self.config = config
        self.vocab = check_text_config(config.text)
        self.model = make_dit(config.model, self.vocab.size)
        self.tx, self.schedule = make_optimizer(config.optim)
        self.examples = data.Examples(config.text, self.vocab, stats_of(config), int(config.data.max_frames))

    def init_state(self, rng: jax.Array) -> dict:
        f, latent = int(self.config.data.max_frames), int(self.config.model.latent_dim)
        z = jnp.zeros((1, f, latent))
        params = self.model.init(jax.random.fold_in(rng, 1), z, z, jnp.zeros((1, f), jnp.int32), jnp.zeros(1),
                                 jnp.ones((1, f), bool), jnp.zeros(1, bool), jnp.zeros(1, bool))["params"]
        return {**base_state(rng), "params": params, "ema": jax.tree.map(jnp.copy, params),
                "opt": self.tx.init(params)}


def make_update(m: Modules) -> Update:
    """One AdamW step on the flow-matching loss (skipped when not finite), then the EMA."""
    flow_cfg, decay = m.config.flow, float(m.config.optim.ema_decay)

    def grads(state, batch, frozen):
        del frozen
        rng = jax.random.fold_in(state["rng"], state["step"])
        (loss, aux), g = jax.value_and_grad(tts.loss_fn, argnums=1, has_aux=True)(m.model, state["params"], batch,
                                                                                   rng, flow_cfg)
        return (g, loss), {"loss/flow": loss, "span_frac": aux["span_frac"], "grad_norm": optax.tree.norm(g)}

    def apply(state, out, metrics):
        g, loss = out
        params, opt, ok = guarded_update(m.tx, state["params"], state["opt"], g, loss)
        ema = select(ok, ema_update(state["ema"], params, decay, state["step"]), state["ema"])
        new = {**state, "params": params, "opt": opt, "ema": ema, **count_updates(state, [ok])}
        return new, {**metrics, "lr": m.schedule(state["step"])}
    return Update(grads=grads, apply=apply)


@evaluators.register("tts_flow")
def flow_evaluator(context: dict, *, batches: int = 2):
    """The EMA model's flow-matching loss on fixed validation examples with fixed noise -> {"loss"}."""
    m, mesh = context["modules"], context["mesh"]
    source = data.open_split(m.config.data, m.config.data.valid_split)
    valid = [mesh_lib.global_batch(b, mesh) for b in data.fixed_batches(
        source, m.examples, batch_size=int(m.config.train.batch_size), num_batches=batches,
        prompt_pairs=float(m.config.data.get("prompt_pairs", 0.0)) > 0)]
    if not valid:
        raise ValueError(f"{m.config.data.latents}/{m.config.data.valid_split}: no usable validation examples")
    fn = jax.jit(lambda p, b, k: tts.loss_fn(m.model, p, b, k, m.config.flow)[0])

    def evaluate(state) -> dict[str, float]:
        losses = [float(fn(state["ema"], b, jax.random.PRNGKey(i))) for i, b in enumerate(valid)]
        return {"loss": float(np.mean(losses))}
    return evaluate


def sample_pairs(records: list[dict], count: int) -> list[tuple[dict, dict]]:
    """Up to `count` (prompt, target) pairs of distinct records of one speaker, targets in order."""
    pairs = []
    for target in records:
        prompt = next((r for r in records if r["speaker"] == target["speaker"] and r["id"] != target["id"]), None)
        if prompt is not None:
            pairs.append((prompt, target))
        if len(pairs) == count:
            break
    return pairs


def _sample_writer(m: Modules, count: int):
    """(state, step, logger) -> None: the EMA model says validation sentences (true duration) in the
    voice of another utterance of their speaker; wavs, and a figure of the VAE's resynthesis of each
    sentence (the TTS's ceiling) beside the generated one, under RUN/samples/step_N/."""
    source = data.open_split(m.config.data, m.config.data.valid_split)
    usable = [r for r in (source[i] for i in range(min(len(source), 64))) if m.examples(r) is not None]
    pairs = sample_pairs(usable, count)
    if not pairs:
        raise ValueError(f"{source}: no speaker with two usable validation utterances to sample from")
    synth = Synthesizer(m.config, None, load_vae(m.config))
    rows = [prompt_lib.compose(p, prompt_lib.target_from_record(t, m.config.text), m.config.text, m.vocab,
                               synth.stats) for p, t in pairs]
    references: list[np.ndarray] = []

    def write(state, step: int, logger) -> None:
        if not references:
            references.extend(synth.decode([t["latent"] for _, t in pairs]))
        generated = synth.speech(rows, params=state["ema"])
        for i, audio in enumerate(generated):
            logger.audio(step, f"{i}_generated", audio, SAMPLE_RATE)
        fig = figures.spectrogram_pairs([(t["text"][:48], ref, gen) for (_, t), ref, gen
                                         in zip(pairs, references, generated)], SAMPLE_RATE,
                                        title=f"step {step}", labels=("VAE resynthesis", "generated"))
        logger.figure(step, "spectrograms", fig)
        plt.close(fig)
    return write


def make_task(config: ConfigDict, mesh) -> Task:
    """The TTS's Task for engine.loop.run (`config` from prepare_config)."""
    m = Modules(config)
    t = config.train
    context = {"modules": m, "mesh": mesh}
    source = data.open_split(config.data, config.data.train_split)

    def dataset(process_index: int, process_count: int):
        return data.train_dataset(source, m.examples, global_batch_size=int(t.batch_size), seed=int(t.seed),
                                  process_index=process_index, process_count=process_count,
                                  read_threads=int(config.data.read_threads),
                                  prompt_pairs=float(config.data.get("prompt_pairs", 0.0)))

    sample_every = int(t.get("sample_every", 0))
    return Task(
        name="generate", init=m.init_state, updates={"flow": make_update(m)}, schedule=lambda step: "flow",
        dataset=dataset, batch_keys=BATCH_KEYS, frozen_sections=FROZEN_SECTIONS,
        evaluators=evaluators.build(config.evals, context), best_metric=t.get("best_metric") or None,
        samples=_sample_writer(m, int(t.num_samples)) if sample_every else None, sample_every=sample_every,
        throughput=("frames", float(t.batch_size * config.data.max_frames)), shown=("loss/flow",))


def train(config: ConfigDict, workdir: str) -> RunResult:
    """Train (or resume) the TTS run in `workdir` on the exports under `config.data.latents`."""
    config = prepare_config(config)
    logging.info("TTS on %s (VAE run %s, step %d); %d text symbols", config.data.latents, config.vae.workdir,
                 config.vae.step, len(config.text.symbols))
    return run(config, workdir, make_task)
