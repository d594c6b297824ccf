"""The VAE's update kinds as engine `Update`s: generator (with or without the GAN losses),
discriminator, or both at once.

The generator gradient is assembled from cotangents at `stats`, the output of the encoder's last
layer (the adaptive-weighting anchor):

  audio --trunk--> h --last layer--> stats --sample--> z --decoder--> y --> audio branches
                                           +--> stats branches (KL)
                                           +--> projection --> aligned branches (vs teacher)

Each branch of the table (`train.branches`) is differentiated w.r.t. its input once. The branches that
read a decoder output (the waveform, the harmonic decoder's f0) have their weighted cotangents summed
and pulled back through the decoder in one pass, as one backward of the summed loss would; a branch
whose own gradient at `stats` the adaptive weights need (the reference, an adaptive term) gets one
more pass w.r.t. the decoder's input only (XLA drops its unused parameter gradient), unless it is the
only decoded branch. The last layer's gradient of a term is `h^T g` (`losses.weighting.last_layer_grads`),
which gives the adaptive weights almost for free; the weighted sum of the cotangents at `stats` is
pulled back through the last layer and the trunk once.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.engine import update as update_lib
from speechvae_jax.engine.task import Update
from speechvae_jax.losses import adversarial, spectral, weighting
from speechvae_jax.models import bottleneck
from speechvae_jax.models.projection import align_subspace
from speechvae_jax.teachers.features import layer_indices, teacher_targets
from speechvae_jax.train.branches import DECODED, Branch, generator_branches, pitch_target, stft_loss
from speechvae_jax.train.state import Modules, ema_update

Batch = dict[str, jax.Array]
KINDS = ("generator", "generator+gan", "discriminator", "both")


def _tree_sum(trees: list) -> Any:
    return jax.tree.map(lambda *xs: sum(xs), *trees)


def _tree_scale(tree: Any, s: jax.Array) -> Any:
    return jax.tree.map(lambda x: x * s, tree)


def cached_layers(config, teacher: Any) -> list[int]:
    """Hidden-state indices a feature cache must hold for `config`: those teacher.layer names
    (one, a list or all), then alignment.teacher_layer_low when set."""
    n = teacher.config.num_hidden_layers + 1
    low = config.alignment.get("teacher_layer_low")
    return layer_indices(config.teacher.layer, n) + ([] if low is None else layer_indices(low, n))


def teacher_features(m: Modules, teacher: Any, teacher_params: Any, batch: Batch,
                     num_frames: int) -> tuple[Any, Any, jax.Array]:
    """(s [B,T,D], s_low [B,T,D] | None, frame mask [B,T]) from the frozen teacher (no gradient).

    With a feature cache the batch carries the teacher frames of its crop (`teacher` [B,K,T50,D]:
    the layers `cached_layers` lists, in that order) and the teacher is not run.
    """
    audio, mask = batch["audio"], batch["mask"]
    if not m.aligning:
        return None, None, frame_mask(mask, num_frames, m.config.model.hop)
    low = m.config.alignment.teacher_layer_low
    if "teacher" in batch:
        hidden = [batch["teacher"][:, k] for k in range(batch["teacher"].shape[1])]
        n_high = len(cached_layers(m.config, teacher)) - (low is not None)
        high_idx, low_idx = list(range(n_high)), n_high
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


class _Part(NamedTuple):
    """One differentiated branch: its losses, fixed coefficient and cotangents."""
    branch: Branch
    losses: dict
    coef: float           # the loss's weight for a one-loss branch (differentiated raw), else 1
    g_stats: Any          # at stats; decoded branches: None until pulled back through the decoder
    g_out: Any = None     # decoded branches: {decoder output key: cotangent}
    g_vae: Any = None     # decoded branches pulled back on their own: the decoder params' share
    g_proj: Any = None    # aligned branches: the projection head's


def _differentiate(br: Branch, ctx: dict, out: dict, stats, gen: dict) -> _Part:
    """A one-loss branch w.r.t. its raw loss (its weight and an adaptive weight scale the cotangents
    later); a several-loss branch w.r.t. its weighted sum."""
    single = len(br.weights) == 1

    def objective(*args):
        losses = br.fn(*args, ctx)
        value = losses[next(iter(br.weights))] if single else sum(br.weights[k] * losses[k] for k in br.weights)
        return value, losses
    coef = next(iter(br.weights.values())) if single else 1.0
    if br.reads in DECODED:
        key = DECODED[br.reads]
        (_, losses), g = jax.value_and_grad(objective, has_aux=True)(out[key])
        return _Part(br, losses, coef, None, g_out={key: g})
    if br.reads == "stats":
        (_, losses), g_stats = jax.value_and_grad(objective, has_aux=True)(stats)
        return _Part(br, losses, coef, g_stats)
    (_, losses), (g_stats, g_proj) = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
        stats, gen["proj"])
    return _Part(br, losses, coef, g_stats, g_proj=g_proj)


def _pull_back(dec_vjp, out: dict, cotangents: list[tuple[Any, dict]]) -> tuple[Any, Any]:
    """(g_stats, g_vae) of sum_i c_i * cotangent_i through the decoder (outputs none names: zero)."""
    return dec_vjp({k: sum((c * g[k] for c, g in cotangents if k in g), jnp.zeros_like(v)) for k, v in out.items()})


def _decoded_grads(parts: list[_Part], coefs: list, dec_vjp, out: dict) -> tuple[Any, Any]:
    """(g_stats, g_vae) of the decoded branches' weighted sum: one pass through the decoder, or the
    scaled pull-back of a lone decoded branch that already has one."""
    decoded = [(c, p) for c, p in zip(coefs, parts) if p.g_out is not None]
    if len(decoded) == 1 and decoded[0][1].g_vae is not None:
        c, p = decoded[0]
        return _tree_scale(p.g_stats, c), _tree_scale(p.g_vae, c)
    return _pull_back(dec_vjp, out, [(c, p.g_out) for c, p in decoded])


def _coefficients(parts: list[_Part], h: jax.Array, acfg) -> tuple[list[jax.Array], dict]:
    """Each part's coefficient (fixed weight x adaptive weight) and the weighting metrics."""
    coefs = [jnp.asarray(p.coef, jnp.float32) for p in parts]
    metrics, ws = {}, {}
    adaptive = [i for i, p in enumerate(parts) if p.branch.adaptive]
    if adaptive:
        ref = next(p for p in parts if p.branch.reference)
        ref_grads = weighting.last_layer_grads(h, ref.g_stats)
        per_term = {next(iter(parts[i].branch.weights)): weighting.last_layer_grads(h, parts[i].g_stats)
                    for i in adaptive}
        ws = weighting.adaptive_weights(ref_grads, per_term, eps=acfg.eps, clamp=acfg.clamp,
                                        shared=acfg.shared_weight)
        for i in adaptive:
            coefs[i] = coefs[i] * ws[next(iter(parts[i].branch.weights))]
        metrics["grad_norm/stft"] = weighting.grad_norm(ref_grads)
        metrics.update({f"grad_norm/{k}": weighting.grad_norm(v) for k, v in per_term.items()})
    for p in parts:
        if p.branch.log_prefix == "align":
            name = next(iter(p.branch.weights))
            metrics[f"weight/{name}"] = ws.get(name, jnp.ones((), jnp.float32))
    return coefs, metrics


def generator_loss_and_grads(m: Modules, gen: Any, disc: Any, batch: Batch, rng: jax.Array,
                             step: jax.Array, targets: tuple, *, gan: bool):
    """(total loss, grads w.r.t. gen, metrics, reconstruction y [B,N]) for the branch table."""
    acfg = m.config.alignment
    audio, mask = batch["audio"], batch["mask"]
    n = audio.shape[1]
    s, s_low, fmask = targets

    h, trunk_vjp = jax.vjp(lambda p: m.vae.apply({"params": p}, audio, method="encode_features"), gen["vae"])
    stats, head_vjp = jax.vjp(
        lambda p, hh: m.vae.apply({"params": p}, hh, method="encode_head").astype(jnp.float32), gen["vae"], h)
    eps = jax.random.normal(rng, bottleneck.split_stats(stats)[0].shape, jnp.float32)

    def latent(st):
        mean, sigma = bottleneck.posterior(st)
        return mean + sigma * eps

    def decoder_input(st):
        z = latent(st)
        if m.aligning and acfg.subspace_ratio < 1.0:
            _, z = align_subspace(z, acfg.subspace_ratio)
        return z

    pitch = pitch_target(m, audio * mask, stats.shape[1])
    forced = pitch if pitch is not None and m.config.loss.pitch.teacher_forcing else None

    def decode(st, p):
        out = m.vae.apply({"params": p}, decoder_input(st), forced, method="decode_outputs")
        return {**out, "audio": out["audio"].astype(jnp.float32)[:, :n] * mask}

    out, dec_vjp = jax.vjp(decode, stats, gen["vae"])
    y = out["audio"]
    factors = (weighting.schedule_factors(acfg.schedule, step, m.config.train.num_steps)
               if m.aligning else None)
    ctx = {"target": audio * mask, "mask": mask, "disc": disc, "latent": latent,
           "pitch": pitch, "s": s, "s_low": s_low, "frame_mask": fmask, "factors": factors}
    parts = [_differentiate(br, ctx, out, stats, gen) for br in generator_branches(m, gan=gan, step=step)]
    adaptive = any(p.branch.adaptive for p in parts)
    for i, p in enumerate(parts):   # decoded branches whose own g_stats the adaptive weights need
        if adaptive and p.g_out is not None and (p.branch.adaptive or p.branch.reference):
            g_stats, g_vae = _pull_back(dec_vjp, out, [(1.0, p.g_out)])
            parts[i] = p._replace(g_stats=g_stats, g_vae=g_vae)
    coefs, metrics = _coefficients(parts, h, acfg)
    metrics.update({f"{p.branch.log_prefix}/{k}": v for p in parts for k, v in p.losses.items()
                    if k in p.branch.weights})
    if factors is not None:
        metrics["weight/scale"] = acfg.hyper_weight * factors["weight_scale"]

    raw = [p.losses[next(iter(p.branch.weights))] if len(p.branch.weights) == 1 else
           sum(p.branch.weights[k] * p.losses[k] for k in p.branch.weights) for p in parts]
    total = sum(c * v for c, v in zip(coefs, raw))
    g_stats_dec, g_vae_dec = _decoded_grads(parts, coefs, dec_vjp, out)
    g_vae_head, g_h = head_vjp(_tree_sum([g_stats_dec] + [_tree_scale(p.g_stats, c) for c, p in zip(coefs, parts)
                                                          if p.g_out is None]))
    (g_vae_trunk,) = trunk_vjp(g_h)
    grads = {"vae": _tree_sum([g_vae_dec, g_vae_head, g_vae_trunk])}
    g_proj = [_tree_scale(p.g_proj, c) for c, p in zip(coefs, parts) if p.g_proj is not None]
    if g_proj:
        grads["proj"] = _tree_sum(g_proj)
    metrics["loss/total"] = total
    return total, grads, metrics, y


def discriminator_loss_and_grads(m: Modules, disc: Any, real: jax.Array, fake: jax.Array):
    def loss(dp):
        return adversarial.lsgan_discriminator_loss(m.disc.apply({"params": dp}, real),
                                                    m.disc.apply({"params": dp}, fake))
    return jax.value_and_grad(loss)(disc)


def generate(m: Modules, vae_params: Any, audio: jax.Array, mask: jax.Array, rng: jax.Array | None):
    """Reconstruction [B,N]: encode, sample (or the mean when rng is None), decode, masked."""
    n = audio.shape[1]
    mean, sigma = m.vae.apply({"params": vae_params}, audio, method="encode")
    z = mean if rng is None else bottleneck.sample(mean, sigma, rng)
    y = m.vae.apply({"params": vae_params}, z, method="decode").astype(jnp.float32)
    return y[:, :n] * mask


def make_update(m: Modules, teacher: Any, kind: str) -> Update:
    """The engine `Update` of `kind` (one of KINDS); its `frozen` input is the teacher's params.

    grads -> out["gen"] = (loss, grads w.r.t. state["gen"]) and/or out["disc"] = (loss, grads w.r.t.
    state["disc"]); apply -> AdamW steps (skipped when non-finite), EMA of the VAE, counters.
    """
    if kind not in KINDS:
        raise ValueError(f"update kind must be one of {KINDS}, got {kind!r}")
    gen_update, disc_update = kind != "discriminator", kind in ("discriminator", "both")
    gan = kind != "generator"
    cfg = m.config

    def grads(state, batch, teacher_params):
        step = state["step"]
        rng = jax.random.fold_in(state["rng"], step)
        num_frames = -(-batch["audio"].shape[1] // cfg.model.hop)
        out, metrics, fake = {}, {}, None
        if gen_update:
            targets = teacher_features(m, teacher, teacher_params, batch, num_frames)
            loss, g, metrics, fake = generator_loss_and_grads(m, state["gen"], state["disc"], batch, rng, step,
                                                              targets, gan=gan)
            out["gen"] = (loss, g)
        if disc_update:
            if fake is None:
                fake = generate(m, state["gen"]["vae"], batch["audio"], batch["mask"], rng)
            real = batch["audio"] * batch["mask"]
            out["disc"] = discriminator_loss_and_grads(m, state["disc"], real, jax.lax.stop_gradient(fake))
            metrics["loss/disc"] = out["disc"][0]
        return out, metrics

    def apply(state, out, metrics):
        new, metrics, oks = dict(state), dict(metrics), []
        if "gen" in out:
            loss, g = out["gen"]
            new["gen"], new["gen_opt"], ok = update_lib.guarded_update(m.gen_tx, state["gen"], state["gen_opt"],
                                                                       g, loss)
            o = cfg.optim  # runs saved before ema_schedule existed: "warmup10"
            ema = ema_update(state["ema"]["vae"], new["gen"]["vae"], o.ema_decay, state["step"],
                             o.get("ema_schedule", "warmup10"), o.get("ema_power", 0.75),
                             o.get("ema_update_after_step", 1))
            new["ema"] = update_lib.select(ok, {"vae": ema}, state["ema"])
            metrics["skipped_update"] = 1.0 - ok.astype(jnp.float32)
            oks.append(ok)
        if "disc" in out:
            loss, g = out["disc"]
            new["disc"], new["disc_opt"], ok = update_lib.guarded_update(m.disc_tx, state["disc"],
                                                                         state["disc_opt"], g, loss)
            metrics["skipped_update_disc"] = 1.0 - ok.astype(jnp.float32)
            oks.append(ok)
        new.update(update_lib.count_updates(state, oks))
        return new, metrics

    return Update(grads=grads, apply=apply)


def reconstruction_metrics(m: Modules, vae_params: Any, batch: Batch) -> dict[str, jax.Array]:
    """Deterministic reconstruction losses of a batch (posterior mean): {"stft", "mel"}."""
    y = generate(m, vae_params, batch["audio"], batch["mask"], None)
    target = batch["audio"] * batch["mask"]
    return {"stft": stft_loss(m.config.loss, y, target), "mel": spectral.mel_distance(y, target)}
