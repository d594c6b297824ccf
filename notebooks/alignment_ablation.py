# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Alignment-loss ablation: the terms side by side
#
# Calls the public functions of `speechvae_jax.losses.alignment` and `speechvae_jax.losses.weighting`
# on small teacher-like inputs: values of every term, how their gradients differ, what the margins do,
# the blockwise distance matrix against the naive one, and the adaptive weights. Equations and origins:
# `docs/alignment.md`. Runs on CPU in seconds; `tests/test_notebooks.py` executes it.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from speechvae_jax.losses import alignment, weighting
from speechvae_jax.models.projection import make_projection
from speechvae_jax.presets.alignment import SCHEMES, alignment_config

# %% [markdown]
# ## Teacher-like inputs
# Teacher frames `s` are smooth in time (a random walk, as SSL features change slowly over a phone),
# the latent `z` is a noisy linear view of them, and `p` is the release's linear projection of `z`
# up to the teacher width. The second utterance is padded after 30 frames.

# %%
B, T, L, D = 2, 40, 64, 256
rng = np.random.default_rng(0)
s = np.cumsum(rng.normal(size=(B, T, D)), axis=1) / np.sqrt(np.arange(1, T + 1))[None, :, None]
s = jnp.asarray(s, jnp.float32)
mix = rng.normal(size=(D, L)) / np.sqrt(D)
z = jnp.asarray(np.asarray(s) @ mix + 0.5 * rng.normal(size=(B, T, L)), jnp.float32)
mask = jnp.asarray(np.arange(T)[None] < np.array([[T], [30]]))

cfg = alignment_config("joint_marginal")
proj = make_projection(cfg, D, latent_dim=L)
proj_params = proj.init(jax.random.PRNGKey(0), z)["params"]
p = proj.apply({"params": proj_params}, z)
print("p", p.shape, "s", s.shape, "real frames", int(mask.sum()))

# %% [markdown]
# ## Every term, jitted

# %%
terms = {
    "time_cos": jax.jit(alignment.time_axis_cosine),
    "st_t": jax.jit(alignment.speechtokenizer_t_axis),
    "d_axis": jax.jit(alignment.d_axis),
    "mcos": jax.jit(alignment.marginal_cosine),
    "mdms": jax.jit(alignment.marginal_distance_matrix),
    "mdms_utt": jax.jit(lambda p, s, m: alignment.marginal_distance_matrix(p, s, m, pooling="utterance")),
}
values = {k: float(f(p, s, mask)) for k, f in terms.items()}
for k, v in values.items():
    print(f"{k:>9}: {v:+.4f}")

# %% [markdown]
# ## How the gradients differ
# Gradient of each term w.r.t. the projected frames `p`: its size, and the cosine between the
# directions of every pair of terms. Time-axis terms pull each frame towards its teacher frame;
# the distance matrix only cares about which frames resemble which.

# %%
grads = {k: jax.grad(f)(p, s, mask) for k, f in terms.items()}
names = list(grads)
flat = np.stack([np.asarray(grads[k]).ravel() for k in names])
norms = np.linalg.norm(flat, axis=1)
similarity = (flat @ flat.T) / np.outer(norms, norms)
for k, n in zip(names, norms):
    print(f"{k:>9}: |grad| = {n:.2e}")
fig, ax = plt.subplots(figsize=(4.5, 4))
im = ax.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu")
ax.set_xticks(range(len(names)), names, rotation=45)
ax.set_yticks(range(len(names)), names)
ax.set_title("cosine between gradient directions")
fig.colorbar(im)
plt.show()

# %% [markdown]
# ## Margins
# Marginal cosine: a frame whose cosine with its teacher frame is above 1 - m gets no gradient at all.
# Distance matrix: a pair whose similarity differs by less than m from the teacher's gets none.
# Below, `p` is moved from random towards `s` (mixing weight alpha), and we plot each loss and the
# fraction of real frames that still receive gradient.

# %%
alphas = np.linspace(0, 1, 21)
noise = jnp.asarray(rng.normal(size=s.shape), jnp.float32)
mcos_vg = jax.jit(jax.value_and_grad(alignment.marginal_cosine))
mdms = jax.jit(alignment.marginal_distance_matrix)
curves = {}
for m1, m2 in ((0.0, 0.0), (0.25, 0.1), (0.5, 0.25)):
    rows = []
    for a in alphas:
        q = a * s + (1 - a) * noise
        lc, gc = mcos_vg(q, s, mask, m1)
        lm = mdms(q, s, mask, m2)
        live = float(jnp.mean(jnp.any(gc != 0, axis=-1)[mask]))
        rows.append((float(lc), float(lm), live))
    curves[(m1, m2)] = np.array(rows)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for (m1, m2), r in curves.items():
    for ax, col in zip(axes, range(3)):
        ax.plot(alphas, r[:, col], label=f"m_cos={m1}, m_mat={m2}")
for ax, title in zip(axes, ("marginal cosine", "marginal distance matrix", "frames with gradient (mcos)")):
    ax.set_title(title)
    ax.set_xlabel("alpha (0 = noise, 1 = teacher)")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Blockwise distance matrix = naive
# The naive form holds the N x N matrices; `block_size` scans block pairs (upper triangle only)
# with an exact custom gradient. Same value and gradient, memory O(block^2).

# %%
naive = jax.jit(jax.value_and_grad(lambda q: alignment.marginal_distance_matrix(q, s, mask, 0.1)))
blockwise = jax.jit(jax.value_and_grad(
    lambda q: alignment.marginal_distance_matrix(q, s, mask, 0.1, block_size=16)))
(v0, g0), (v1, g1) = naive(p), blockwise(p)
print(f"naive {float(v0):.6f}  blockwise {float(v1):.6f}  max |grad diff| {float(jnp.abs(g0 - g1).max()):.2e}")

# %% [markdown]
# ## Adaptive weights
# w_k = ||grad of the reference loss|| / ||grad of term k|| at the encoder's last layer. Here a toy
# last layer (a Dense from features h to mean and scale) and a toy reconstruction loss stand in for
# the VAE; the weights come from the cotangents at the layer's output (`last_layer_grads`).

# %%
C = 32
h = jnp.asarray(rng.normal(size=(B, T, C)), jnp.float32)
kernel = jnp.asarray(rng.normal(size=(C, 2 * L)) / np.sqrt(C), jnp.float32)
stats = h @ kernel
target = jnp.asarray(rng.normal(size=stats.shape), jnp.float32)

def rec(st):
    return jnp.mean((st - target) ** 2)

def term(name):
    def f(st):
        q = proj.apply({"params": proj_params}, st[..., :L])
        return alignment.alignment_terms(cfg, q, s, mask)[name]
    return f

ref = weighting.last_layer_grads(h, jax.grad(rec)(stats))
per_term = {k: weighting.last_layer_grads(h, jax.grad(term(k))(stats)) for k in alignment.term_names(cfg)}
print("per term:", {k: round(float(v), 3) for k, v in weighting.adaptive_weights(ref, per_term).items()})
print("shared  :", {k: round(float(v), 3) for k, v in weighting.adaptive_weights(ref, per_term, shared=True).items()})

# %% [markdown]
# ## Staged schedule (VA-VAE recipe)

# %%
sched = alignment_config("joint_marginal").schedule
sched.kind = "staged"
steps = np.arange(0, 60_000, 500)
f = jax.jit(lambda st: weighting.schedule_factors(sched, st))
out = [f(int(st)) for st in steps]
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(steps, [float(o["weight_scale"]) for o in out], label="weight scale")
ax.plot(steps, [float(o["margins_on"]) for o in out], label="margins on")
ax.set_xlabel("step")
ax.legend()
plt.show()
