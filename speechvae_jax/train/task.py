"""The VAE trainer: what it hands the engine (`make_task`), its evaluator and its samples.

    speechvae train --config configs/tiny.py:joint_marginal --workdir RUN [--config.x=y ...]

calls `train_and_evaluate(config, workdir)` = `engine.loop.run(config, workdir, make_task)`.
Schedule: steps [0, train.disc_start) run the GAN-free generator update; after that generator and
discriminator updates alternate (`train.update_mode="alternating"`) or run together ("simultaneous").
"""
from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
from ml_collections import ConfigDict

from speechvae_jax.data import pipeline
from speechvae_jax.dsp import figures
from speechvae_jax.engine import evaluators
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.engine.loop import RunResult, run
from speechvae_jax.engine.task import Task
from speechvae_jax.models import vae
from speechvae_jax.teachers import load_teacher
from speechvae_jax.teachers.cache import CachedTargets
from speechvae_jax.teachers.features import layer_indices
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules

# Config sections a resumed run must not change (they change shapes or the data order).
FROZEN_SECTIONS = ("model", "data", "alignment", "teacher", "mesh")
UPDATE_MODES = ("alternating", "simultaneous")


def validate_config(config: ConfigDict) -> None:
    if config.train.update_mode not in UPDATE_MODES:
        raise ValueError(f"train.update_mode must be one of {UPDATE_MODES}, got {config.train.update_mode!r}")
    if config.alignment.scheme != "none" and not config.teacher.path:
        raise ValueError(f"alignment scheme {config.alignment.scheme!r} needs config.teacher.path "
                         "(a converted or pretrained teacher; see docs/teachers.md)")


def schedule(config: ConfigDict):
    """step -> update kind (one of train.steps.KINDS)."""
    t, lcfg = config.train, config.loss
    gan_on = lcfg.adversarial_weight > 0 or lcfg.feature_matching_weight > 0

    def kind(step: int) -> str:
        if not gan_on or step < t.disc_start:
            return "generator"
        if t.update_mode == "simultaneous":
            return "both"
        return "generator+gan" if step % 2 == 0 else "discriminator"
    return kind


def load_teacher_for(config: ConfigDict):
    """(teacher, feature width) or (None, None) without alignment; checks the configured layer."""
    if config.alignment.scheme == "none":
        return None, None
    teacher = load_teacher(config.teacher.path)
    hidden = jax.eval_shape(lambda p: teacher.apply_fn(p, jax.numpy.zeros((1, 16000))), teacher.params)
    try:
        layer_indices(config.teacher.layer, len(hidden))
    except ValueError as e:
        raise ValueError(f"config.teacher.layer={config.teacher.layer!r}: {e} (the teacher at "
                         f"{config.teacher.path}; 0 = embeddings)") from None
    return teacher, int(hidden[0].shape[-1])


def validation_batches(config: ConfigDict, mesh, count: int) -> list[dict]:
    """Fixed validation crops (the same at every evaluation), as global arrays."""
    vcfg = ConfigDict(config.data.to_dict())
    vcfg.train_split = config.data.valid_split
    vcfg.num_workers = 0
    vcfg.speed_perturb = 0.0
    it = iter(pipeline.train_dataset(vcfg, global_batch_size=config.train.batch_size, seed=1234,
                                     process_index=jax.process_index(), process_count=jax.process_count()))
    return [mesh_lib.global_batch(next(it), mesh) for _ in range(count)]


@evaluators.register("vae_reconstruction")
def reconstruction_evaluator(context: dict, *, batches: int = 2):
    """EMA reconstructions of fixed validation crops -> {"stft": MR-STFT loss, "mel": mel distance}."""
    m, mesh, state_sh = context["modules"], context["mesh"], context["state_shardings"]
    valid = validation_batches(m.config, mesh, batches)
    batch_sh = {k: mesh_lib.batch_sharding(mesh) for k in ("audio", "mask")}
    fn = jax.jit(lambda p, b: steps.reconstruction_metrics(m, p, b), in_shardings=(state_sh, batch_sh),
                 out_shardings=mesh_lib.replicated(mesh))

    def evaluate(state) -> dict[str, float]:
        vals = [jax.device_get(fn(state["ema"]["vae"], b)) for b in valid]
        return {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}
    return evaluate


def _sample_writer(m: Modules, mesh, count: int):
    """(state, step, logger) -> None: EMA reconstructions of the first validation crops, as wavs and a
    spectrogram figure under RUN/samples/step_N/."""
    batch = validation_batches(m.config, mesh, 1)[0]
    # replicated outputs: every process holds the whole batch (process 0 writes it)
    fn = jax.jit(lambda p, b: (b["audio"] * b["mask"], steps.generate(m, p, b["audio"], b["mask"], None)),
                 out_shardings=mesh_lib.replicated(mesh))
    sr = int(m.config.data.sample_rate)

    def write(state, step: int, logger) -> None:
        orig, recon = (np.asarray(x) for x in jax.device_get(fn(state["ema"]["vae"], batch)))
        if not logger.enabled:  # the computation above is collective; only process 0 writes
            return
        pairs = []
        for i in range(min(count, orig.shape[0])):
            logger.audio(step, f"{i}_orig", orig[i], sr)
            logger.audio(step, f"{i}_recon", recon[i], sr)
            pairs.append((f"crop {i}", orig[i], recon[i]))
        fig = figures.spectrogram_pairs(pairs, sr, title=f"step {step}")
        logger.figure(step, "spectrograms", fig)
        plt.close(fig)
    return write


def make_task(config: ConfigDict, mesh) -> Task:
    """The VAE's Task for engine.loop.run."""
    validate_config(config)
    teacher, teacher_dim = load_teacher_for(config)
    m = Modules(config, teacher_dim, mesh)
    crop = int(config.data.crop_samples)
    init = lambda rng: m.init_state(rng, crop)
    features = None
    if teacher is not None and config.teacher.cache_dir:
        features = CachedTargets(config.teacher.cache_dir, teacher, steps.cached_layers(config, teacher))
    abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
    state_sh = mesh_lib.tree_shardings(abstract, mesh, int(config.mesh.fsdp_min_size))
    context = {"modules": m, "mesh": mesh, "state_shardings": state_sh["ema"]["vae"]}

    def dataset(process_index: int, process_count: int):
        return pipeline.train_dataset(config.data, global_batch_size=config.train.batch_size,
                                      seed=config.train.seed, process_index=process_index,
                                      process_count=process_count, features=features)

    t = config.train
    return Task(
        name="train", init=init, updates={k: steps.make_update(m, teacher, k) for k in steps.KINDS},
        schedule=schedule(config), dataset=dataset,
        batch_keys=("audio", "mask") + (() if features is None else ("teacher",)),
        frozen=None if teacher is None else teacher.params, frozen_sections=FROZEN_SECTIONS,
        saved_before={f"model.{k}": v for k, v in vae.SAVED_BEFORE.items()},
        evaluators=evaluators.build(config.evals, context), best_metric=t.get("best_metric"),
        samples=_sample_writer(m, mesh, int(t.num_samples)), sample_every=int(t.sample_every),
        throughput=("audio_s", t.batch_size * crop / config.data.sample_rate),
        shown=("loss/stft", "loss/disc"))


def train_and_evaluate(config: ConfigDict, workdir: str) -> RunResult:
    """Train (or resume) the VAE run in `workdir`."""
    return run(config, workdir, make_task)

