"""The jitted train steps: generator update (with alignment and adaptive weights) and discriminator update.

The generator gradient is assembled from cotangents at the output of the encoder's last layer
(`stats` [B,T,2L]), so every loss term's gradient w.r.t. that layer (the adaptive-weighting anchor)
comes almost for free:

  audio --trunk--> h [B,T,C] --last layer--> stats --+--> decoder --> y --> MR-STFT, L1, GAN losses
                                                     +--> KL
                                                     +--> projection --> alignment terms (vs teacher)

Each branch is differentiated w.r.t. `stats` on its own (one vjp per branch, the decoder's vjp is called
once for the MR-STFT cotangent and once more only when other waveform losses are active), the last
layer's gradient for each term is `h^T g` (losses.weighting.last_layer_grads), the adaptive weights
follow, and the weighted sum of cotangents is pulled back through the last layer and the trunk once.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.losses import adversarial, alignment, kl, spectral, weighting
from speechvae_jax.models import bottleneck
from speechvae_jax.models.projection import align_subspace
from speechvae_jax.teachers.features import teacher_targets
from speechvae_jax.train.state import Modules, ema_update

Batch = dict[str, jax.Array]


def stft_loss(lcfg: ConfigDict, estimate: jax.Array, reference: jax.Array) -> jax.Array:
    """The configured multi-resolution STFT loss (the reconstruction loss and adaptive reference)."""
    return spectral.multi_resolution_stft_loss(
        estimate, reference, fft_sizes=tuple(lcfg.stft.fft_sizes), hop_ratio=lcfg.stft.hop_ratio,
        perceptual_weighting=lcfg.stft.perceptual_weighting)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def _select(ok: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _tree_add(*trees: Any) -> Any:
    return jax.tree.map(lambda *xs: sum(xs), *trees)


def _tree_scale(tree: Any, s: jax.Array) -> Any:
    return jax.tree.map(lambda x: x * s, tree)


def teacher_features(m: Modules, teacher: Any, teacher_params: Any, batch: Batch,
                     num_frames: int) -> tuple[Any, Any, jax.Array]:
    """(s [B,T,D], s_low [B,T,D] | None, frame_mask [B,T]) from the frozen teacher (no gradient).

    With a feature cache the batch carries the teacher frames of its crop (`teacher` [B,K,T50,D]:
    the high layer, then the low one) and the teacher is not run.
    """
    audio, mask = batch["audio"], batch["mask"]
    if not m.aligning:
        return None, None, frame_mask(mask, num_frames, m.config.model.hop)
    low = m.config.alignment.teacher_layer_low
    if "teacher" in batch:
        hidden = [batch["teacher"][:, k] for k in range(batch["teacher"].shape[1])]
        high_idx, low_idx = 0, 1
    else:
        hidden = jax.lax.stop_gradient(teacher.apply_fn(teacher_params, audio, mask > 0))
        high_idx, low_idx = m.config.teacher.layer, low
    targets = functools.partial(teacher_targets, hidden, num_frames=num_frames,
                                sample_mask=mask > 0, method=m.config.teacher.interp,
                                hop=teacher.hop, receptive_field=teacher.receptive_field,
                                latent_hop=m.config.model.hop)
    s, fmask = targets(high_idx)
    s_low = None if low is None else targets(low_idx)[0]
    return s, s_low, fmask


def generator_loss_and_grads(m: Modules, gen: Any, disc: Any, batch: Batch, rng: jax.Array,
                             step: jax.Array, targets: tuple, *, gan: bool):
    """Loss terms, adaptive weights and the generator gradient, by cotangents at `stats`."""
    cfg, lcfg, acfg = m.config, m.config.loss, m.config.alignment
    audio, mask = batch["audio"], batch["mask"]
    n = audio.shape[1]
    target = audio * mask
    s, s_low, fmask = targets

    def trunk(p):
        return m.vae.apply({"params": p}, audio, method="encode_features")

    h, trunk_vjp = jax.vjp(trunk, gen["vae"])

    def head(p, h):
        return m.vae.apply({"params": p}, h, method="encode_head").astype(jnp.float32)

    stats, head_vjp = jax.vjp(head, gen["vae"], h)
    mean0, _ = bottleneck.split_stats(stats)
    eps = jax.random.normal(rng, mean0.shape, jnp.float32)

    def latent(st):
        mean, sigma = bottleneck.posterior(st)
        return mean + sigma * eps

    ratio = acfg.subspace_ratio if m.aligning else 1.0

    def decode(st, p):
        z = latent(st)
        if m.aligning and ratio < 1.0:
            _, z = align_subspace(z, ratio)
        y = m.vae.apply({"params": p}, z, method="decode").astype(jnp.float32)
        return y[:, :n] * mask

    y, dec_vjp = jax.vjp(decode, stats, gen["vae"])

    # Waveform losses: MR-STFT (the adaptive-weight reference) separately from the rest.
    l_rec, g_y_rec = jax.value_and_grad(lambda yy: stft_loss(lcfg, yy, target))(y)
    g_stats_rec, g_vae_rec = dec_vjp(g_y_rec)
    metrics = {"loss/stft": l_rec}

    def other_wave_losses(yy):
        parts = {}
        if lcfg.time_l1_weight > 0:
            parts["l1"] = jnp.sum(jnp.abs(yy - target)) / jnp.maximum(jnp.sum(mask), 1.0)
        if gan:
            fake = m.disc.apply({"params": disc}, yy)
            real = jax.lax.stop_gradient(m.disc.apply({"params": disc}, target))
            parts["adv"] = adversarial.lsgan_generator_loss(fake)
            parts["fm"] = adversarial.feature_matching_loss(real, fake)
        total = (lcfg.time_l1_weight * parts.get("l1", 0.0)
                 + lcfg.adversarial_weight * parts.get("adv", 0.0)
                 + lcfg.feature_matching_weight * parts.get("fm", 0.0))
        return total, parts

    g_stats = _tree_scale(g_stats_rec, lcfg.stft_weight)
    g_vae = _tree_scale(g_vae_rec, lcfg.stft_weight)
    total = lcfg.stft_weight * l_rec
    if gan or lcfg.time_l1_weight > 0:
        (l_other, parts), g_y_other = jax.value_and_grad(other_wave_losses, has_aux=True)(y)
        g_stats_o, g_vae_o = dec_vjp(g_y_other)
        g_stats, g_vae = g_stats + g_stats_o, _tree_add(g_vae, g_vae_o)
        total = total + l_other
        metrics.update({f"loss/{k}": v for k, v in parts.items()})

    def kl_loss(st):
        return kl.vae_kl(*bottleneck.posterior(st), fmask)

    l_kl, g_stats_kl = jax.value_and_grad(kl_loss)(stats)
    g_stats = g_stats + lcfg.kl_weight * g_stats_kl
    total = total + lcfg.kl_weight * l_kl
    metrics["loss/kl"] = l_kl

    g_proj = None
    if m.aligning:
        factors = weighting.schedule_factors(acfg.schedule, step)

        def term(name):
            def fn(st, pp):
                z = latent(st)
                if ratio < 1.0:
                    z, _ = align_subspace(z, ratio)
                proj = functools.partial(m.proj.apply, {"params": pp})
                p = proj(z)
                st = proj(s, method="teacher")
                st_low = None if s_low is None else proj(s_low, method="teacher", low=True)
                terms = alignment.alignment_terms(acfg, p, st, fmask, s_low=st_low,
                                                  margins_on=factors["margins_on"], mesh=m.mesh)
                return terms[name]
            return fn

        names = alignment.term_names(acfg)
        values, g_st, g_pp = {}, {}, {}
        for name in names:
            values[name], (g_st[name], g_pp[name]) = jax.value_and_grad(
                term(name), argnums=(0, 1))(stats, gen["proj"])
        if acfg.adaptive:
            ref = weighting.last_layer_grads(h, g_stats_rec)
            per_term = {k: weighting.last_layer_grads(h, g_st[k]) for k in names}
            w = weighting.adaptive_weights(ref, per_term, eps=acfg.eps, clamp=acfg.clamp,
                                           shared=acfg.shared_weight)
            metrics["grad_norm/stft"] = weighting.grad_norm(ref)
            metrics.update({f"grad_norm/{k}": weighting.grad_norm(v) for k, v in per_term.items()})
        else:
            w = {k: jnp.ones((), jnp.float32) for k in names}
        scale = acfg.hyper_weight * factors["weight_scale"]
        g_proj = None
        for k in names:
            c = scale * acfg.term_weights.get(k, 1.0) * w[k]
            g_stats = g_stats + c * g_st[k]
            g_proj = _tree_scale(g_pp[k], c) if g_proj is None else _tree_add(
                g_proj, _tree_scale(g_pp[k], c))
            total = total + c * values[k]
            metrics[f"align/{k}"] = values[k]
            metrics[f"weight/{k}"] = w[k]
        metrics["weight/scale"] = scale

    g_vae_head, g_h = head_vjp(g_stats)
    (g_vae_trunk,) = trunk_vjp(g_h)
    grads = {"vae": _tree_add(g_vae, g_vae_head, g_vae_trunk)}
    if g_proj is not None:
        grads["proj"] = g_proj
    metrics["loss/total"] = total
    return total, grads, metrics, y


def discriminator_loss_and_grads(m: Modules, disc: Any, real: jax.Array, fake: jax.Array):
    def loss(dp):
        return adversarial.lsgan_discriminator_loss(m.disc.apply({"params": dp}, real),
                                                    m.disc.apply({"params": dp}, fake))
    return jax.value_and_grad(loss)(disc)


def _apply_update(tx, params, opt_state, grads, loss):
    """One optimiser update, skipped (params and state kept) when loss or grads are not finite."""
    ok = jnp.isfinite(loss) & _all_finite(grads)
    safe = jax.tree.map(lambda g: jnp.where(ok, g, 0.0), grads)
    updates, new_opt = tx.update(safe, opt_state, params)
    new_params = jax.tree.map(lambda p, u: p + u, params, updates)
    return _select(ok, new_params, params), _select(ok, new_opt, opt_state), ok


def make_grads_fn(m: Modules, teacher: Any, *, update: str, gan: bool):
    """`(state, batch, teacher_params) -> (out, metrics)`, the losses-and-gradients half of a step.

    out["gen"] = (loss, grads w.r.t. state["gen"]) for update "generator" or "both"; out["disc"] =
    (loss, grads w.r.t. state["disc"]) for "discriminator" or "both". Not jitted.
    """
    cfg = m.config

    def grads_fn(state, batch, teacher_params):
        step = state["step"]
        rng = jax.random.fold_in(state["rng"], step)
        num_frames = -(-batch["audio"].shape[1] // cfg.model.hop)
        out, metrics, fake = {}, {}, None
        if update in ("generator", "both"):
            targets = teacher_features(m, teacher, teacher_params, batch, num_frames)
            loss, grads, metrics, fake = generator_loss_and_grads(
                m, state["gen"], state["disc"], batch, rng, step, targets, gan=gan)
            out["gen"] = (loss, grads)
        if update in ("discriminator", "both"):
            if fake is None:
                fake = generate(m, state["gen"]["vae"], batch["audio"], batch["mask"], rng)
            real = batch["audio"] * batch["mask"]
            out["disc"] = discriminator_loss_and_grads(m, state["disc"], real,
                                                       jax.lax.stop_gradient(fake))
            metrics["loss/disc"] = out["disc"][0]
        return out, metrics

    return grads_fn


def make_step(m: Modules, teacher: Any, *, update: str, gan: bool, shardings: tuple | None = None):
    """A train step `(state, batch, teacher_params) -> (state, metrics)`.

    update: "generator", "discriminator" (alternating mode runs them on alternate steps) or "both".
    gan: whether adversarial / feature-matching losses are on (False before `train.disc_start`).
    shardings: (state, batch, teacher, replicated) shardings for the loop; None in tests.

    The step is two jitted functions: the losses and gradients, then the optimiser / EMA update
    (donating the state). XLA:CPU compiles the pair several times faster than one fused function,
    whose hundreds of small per-parameter update kernels make compilation super-linear.
    """
    cfg = m.config

    grads_fn = make_grads_fn(m, teacher, update=update, gan=gan)

    def apply_fn(state, out, metrics):
        new, metrics = dict(state), dict(metrics)
        step = state["step"]
        if "gen" in out:
            loss, grads = out["gen"]
            new["gen"], new["gen_opt"], ok = _apply_update(m.gen_tx, state["gen"], state["gen_opt"],
                                                           grads, loss)
            o = cfg.optim  # runs saved before ema_schedule existed: "warmup10"
            ema = ema_update(state["ema"]["vae"], new["gen"]["vae"], o.ema_decay, step,
                             o.get("ema_schedule", "warmup10"), o.get("ema_power", 0.75),
                             o.get("ema_update_after_step", 1))
            new["ema"] = _select(ok, {"vae": ema}, state["ema"])
            new["skipped"] = new["skipped"] + (1 - ok.astype(jnp.int32))
            metrics["skipped_update"] = 1.0 - ok.astype(jnp.float32)
        if "disc" in out:
            d_loss, d_grads = out["disc"]
            new["disc"], new["disc_opt"], ok = _apply_update(m.disc_tx, state["disc"],
                                                             state["disc_opt"], d_grads, d_loss)
            new["skipped"] = new["skipped"] + (1 - ok.astype(jnp.int32))
            metrics["skipped_update_disc"] = 1.0 - ok.astype(jnp.float32)
        new["step"] = step + 1
        return new, metrics

    if shardings is None:
        grads_jit = jax.jit(grads_fn)
        apply_jit = jax.jit(apply_fn, donate_argnums=(0,))
    else:
        state_sh, batch_sh, teacher_sh, rep = shardings
        grads_jit = jax.jit(grads_fn, in_shardings=(state_sh, batch_sh, teacher_sh))
        apply_jit = jax.jit(apply_fn, out_shardings=(state_sh, rep), donate_argnums=(0,))

    def step_fn(state, batch, teacher_params):
        out, metrics = grads_jit(state, batch, teacher_params)
        return apply_jit(state, out, metrics)

    return step_fn


def generate(m: Modules, vae_params: Any, audio: jax.Array, mask: jax.Array, rng: jax.Array | None):
    """Reconstruction [B,N]: encode, sample (or the mean when rng is None), decode, masked."""
    n = audio.shape[1]
    mean, sigma = m.vae.apply({"params": vae_params}, audio, method="encode")
    z = mean if rng is None else bottleneck.sample(mean, sigma, rng)
    y = m.vae.apply({"params": vae_params}, z, method="decode").astype(jnp.float32)
    return y[:, :n] * mask


def make_eval_step(m: Modules):
    """`(ema_vae_params, batch) -> metrics`: deterministic reconstruction losses on validation crops."""

    def eval_fn(vae_params, batch):
        y = generate(m, vae_params, batch["audio"], batch["mask"], None)
        target = batch["audio"] * batch["mask"]
        return {"val/stft": stft_loss(m.config.loss, y, target),
                "val/mel": spectral.mel_distance(y, target)}

    return eval_fn
