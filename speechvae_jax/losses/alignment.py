"""Alignment losses between projected latents and frozen SSL teacher features (METHOD.md 1-7).

Every term takes p [B,T,Dp] (projected latent), s [B,T,Ds] (teacher frames at the latent rate)
and mask [B,T] (True = real frame) and returns a float32 scalar. Padded frames never count,
neither alone nor inside a pair. Everything is computed in float32, whatever the input dtype.
Cosines use x / max(||x||, 1e-8) per vector, so all-zero (padded) frames have finite gradients.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-8
POOLINGS = ("batch", "utterance", "global", "device")


def _f32(x: jax.Array) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def _normalise(x: jax.Array) -> jax.Array:
    """x [..., D] -> x / max(||x||, EPS) along the last axis (float32)."""
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, EPS * EPS))


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """[..., D] x [..., D] -> [...] cosine similarity."""
    return jnp.sum(_normalise(_f32(a)) * _normalise(_f32(b)), axis=-1)


def _masked_mean(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def _check(p: jax.Array, s: jax.Array, mask: jax.Array, same_width: bool = True) -> jax.Array:
    if p.ndim != 3 or s.ndim != 3 or p.shape[:2] != s.shape[:2] or mask.shape != p.shape[:2]:
        raise ValueError(f"alignment: expected p [B,T,D], s [B,T,D], mask [B,T]; got "
                         f"p {p.shape}, s {s.shape}, mask {mask.shape}")
    if same_width and p.shape[-1] != s.shape[-1]:
        raise ValueError(f"alignment: p and s widths differ ({p.shape[-1]} vs {s.shape[-1]}); "
                         "this term compares features directly, project first")
    return _f32(mask.astype(bool))


def time_axis_cosine(p: jax.Array, s: jax.Array, mask: jax.Array) -> jax.Array:
    """Semantic-VAE time-axis distillation: -mean over real frames of cos(p_t, s_t)."""
    w = _check(p, s, mask)
    return -_masked_mean(_cosine(p, s), w)


def speechtokenizer_t_axis(p: jax.Array, s: jax.Array, mask: jax.Array,
                           sim_weight: float = 1.0) -> jax.Array:
    """SpeechTokenizer T-axis: mean |p - s| over real frames and dims + sim_weight * mean -log sigma(cos)."""
    w = _check(p, s, mask)
    l1 = jnp.sum(jnp.abs(_f32(p) - _f32(s)) * w[..., None]) / jnp.maximum(jnp.sum(w) * p.shape[-1], 1.0)
    return l1 + sim_weight * _masked_mean(-jax.nn.log_sigmoid(_cosine(p, s)), w)


def d_axis(p: jax.Array, s: jax.Array, mask: jax.Array) -> jax.Array:
    """SpeechTokenizer D-axis: per utterance and dim d, cos of the time series p[:, d], s[:, d]
    over real frames; -mean over dims of log sigma(cos), averaged over utterances with a real frame."""
    w = _check(p, s, mask)
    pt = jnp.swapaxes(_f32(p) * w[..., None], 1, 2)  # [B, D, T]
    st = jnp.swapaxes(_f32(s) * w[..., None], 1, 2)
    per_item = -jnp.mean(jax.nn.log_sigmoid(_cosine(pt, st)), axis=-1)  # [B]
    return _masked_mean(per_item, _f32(jnp.any(mask, axis=1)))


def marginal_cosine(p: jax.Array, s: jax.Array, mask: jax.Array, margin=0.5) -> jax.Array:
    """VA-VAE marginal cosine: mean over real frames of ReLU(1 - margin - cos(p_t, s_t))."""
    w = _check(p, s, mask)
    return _masked_mean(jax.nn.relu(1.0 - _f32(margin) - _cosine(p, s)), w)


# ---------------------------------------------------------------- distance matrix

def _naive_pair_sum(a, b, w, margin):
    """Sum over pairs of w_i w_j ReLU(|a_i.a_j - b_i.b_j| - margin), the N x N matrix in memory."""
    d = a @ a.T - b @ b.T
    return jnp.sum(w[:, None] * w[None, :] * jax.nn.relu(jnp.abs(d) - margin))


def _zeros(shape, axis_name):
    """float32 zeros; inside shard_map marked as varying over axis_name (scan carries must agree)."""
    z = jnp.zeros(shape, jnp.float32)
    return z if axis_name is None else jax.lax.pcast(z, axis_name, to="varying")


def _blocks(x, block):
    """[n, ...] -> [n_blocks, block, ...], zero-padded (padding has weight 0)."""
    pad = (-x.shape[0]) % block
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape((-1, block) + x.shape[1:])


def _block_terms(ra, rb, rw, ca, cb, cw, margin):
    """Row block x column block: (d [r,c], pair weight [r,c])."""
    d = ra @ ca.T - rb @ cb.T
    return d, rw[:, None] * cw[None, :]


def _cross_sum(rows, cols, margin, axis_name):
    """Sum over row frames x column frames, one block pair at a time (memory O(block^2))."""
    def over_rows(acc, r):
        def over_cols(acc_c, c):
            d, pw = _block_terms(*r, *c, margin)
            return acc_c + jnp.sum(pw * jax.nn.relu(jnp.abs(d) - margin)), None
        part, _ = jax.lax.scan(over_cols, _zeros((), axis_name), cols)
        return acc + part, None
    total, _ = jax.lax.scan(over_rows, _zeros((), axis_name), rows)
    return total


def _cross_grad(rows, cols, margin, axis_name):
    """sum_j G_ij a_j and sum_j G_ij b_j for every row frame i, G_ij = w_i w_j 1[|d|>m] sign(d)."""
    def over_rows(_, r):
        def over_cols(acc, c):
            d, pw = _block_terms(*r, *c, margin)
            g = pw * jnp.where(jnp.abs(d) > margin, jnp.sign(d), 0.0)
            return (acc[0] + g @ c[0], acc[1] + g @ c[1]), None
        init = tuple(_zeros(x.shape, axis_name) for x in r[:2])
        (ga, gb), _ = jax.lax.scan(over_cols, init, cols)
        return None, (ga, gb)
    _, (ga, gb) = jax.lax.scan(over_rows, None, rows)
    return ga, gb


def _upper_pairs(n_blocks):
    """Block index pairs (i, j), i <= j, as two int32 arrays."""
    i, j = np.triu_indices(n_blocks)
    return jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32)


def _self_sum(blocks, margin, axis_name):
    """_cross_sum(blocks, blocks) from the upper block triangle only (the matrix is symmetric)."""
    a, b, w = blocks

    def body(acc, ij):
        i, j = ij
        d, pw = _block_terms(a[i], b[i], w[i], a[j], b[j], w[j], margin)
        twice = jnp.where(i == j, 1.0, 2.0)
        return acc + twice * jnp.sum(pw * jax.nn.relu(jnp.abs(d) - margin)), None

    total, _ = jax.lax.scan(body, _zeros((), axis_name), _upper_pairs(a.shape[0]))
    return total


def _self_grad(blocks, margin, axis_name):
    """_cross_grad(blocks, blocks) from the upper block triangle: block G_ij feeds rows i and j."""
    a, b, w = blocks

    def body(carry, ij):
        ga, gb = carry
        i, j = ij
        d, pw = _block_terms(a[i], b[i], w[i], a[j], b[j], w[j], margin)
        half = jnp.where(i == j, 0.5, 1.0)  # a diagonal block is visited once but feeds its rows twice
        g = half * pw * jnp.where(jnp.abs(d) > margin, jnp.sign(d), 0.0)
        ga = ga.at[i].add(g @ a[j]).at[j].add(g.T @ a[i])
        gb = gb.at[i].add(g @ b[j]).at[j].add(g.T @ b[i])
        return (ga, gb), None

    init = (_zeros(a.shape, axis_name), _zeros(b.shape, axis_name))
    (ga, gb), _ = jax.lax.scan(body, init, _upper_pairs(a.shape[0]))
    return ga, gb


def _ring(self_fn, cross_fn, local, axis_name, combine):
    """self_fn(local) combined with cross_fn(local, visiting) for every other device's frames,
    which are passed round a ring of devices (one device's frames in memory at a time)."""
    first = self_fn(local)
    if axis_name is None:
        return first
    n_dev = jax.lax.axis_size(axis_name)
    perm = [(i, (i + 1) % n_dev) for i in range(n_dev)]

    def step(carry, _):
        acc, visiting = carry
        visiting = jax.lax.ppermute(visiting, axis_name, perm)
        return (combine(acc, cross_fn(local, visiting)), visiting), None

    (acc, _), _ = jax.lax.scan(step, (first, local), None, length=n_dev - 1)
    return acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _blockwise_pair_sum(a, b, w, margin, block, axis_name):
    """Pair sum over all frames (of all devices on axis_name), never holding more than a block pair."""
    local = (_blocks(a, block), _blocks(b, block), _blocks(w, block))
    total = _ring(lambda r: _self_sum(r, margin, axis_name),
                  lambda r, c: _cross_sum(r, c, margin, axis_name), local, axis_name, jnp.add)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def _blockwise_fwd(a, b, w, margin, block, axis_name):
    return _blockwise_pair_sum(a, b, w, margin, block, axis_name), (a, b, w, margin)


def _blockwise_bwd(block, axis_name, res, ct):
    a, b, w, margin = res
    local = (_blocks(a, block), _blocks(b, block), _blocks(w, block))
    ga, gb = _ring(lambda r: _self_grad(r, margin, axis_name),
                   lambda r, c: _cross_grad(r, c, margin, axis_name), local, axis_name,
                   lambda x, y: (x[0] + y[0], x[1] + y[1]))
    n = a.shape[0]
    ga = 2.0 * ct * ga.reshape(-1, a.shape[-1])[:n]
    gb = -2.0 * ct * gb.reshape(-1, b.shape[-1])[:n]
    return ga, gb, jnp.zeros_like(w), jnp.zeros_like(margin)


_blockwise_pair_sum.defvjp(_blockwise_fwd, _blockwise_bwd)


def _pair_sum(a, b, w, margin, block_size, axis_name=None):
    """a [n,Da], b [n,Db] unit rows, w [n] -> sum_ij w_i w_j ReLU(|a_i.a_j - b_i.b_j| - margin)."""
    if block_size is None and axis_name is None:
        return _naive_pair_sum(a, b, w, margin)
    block = int(block_size) if block_size is not None else a.shape[0]
    if block <= 0:
        raise ValueError(f"alignment: block_size must be positive, got {block_size}")
    return _blockwise_pair_sum(a, b, w, margin, min(block, a.shape[0]), axis_name)


def marginal_distance_matrix(p: jax.Array, s: jax.Array, mask: jax.Array, margin=0.25,
                             pooling: str = "batch", block_size: int | None = None,
                             axis_name: str | None = None, pool_items: int | None = None) -> jax.Array:
    """VA-VAE marginal distance matrix: mean over real frame pairs (i, j), diagonal included, of
    ReLU(|cos(p_i, p_j) - cos(s_i, s_j)| - margin). p and s may differ in width.

    pooling: "batch" pairs all N = B*T frames of the batch; "device" splits the batch into
    consecutive groups of `pool_items` items (None: the whole batch), pairs the frames inside each
    group and averages the groups' losses: under data parallelism with one group per device this is
    each device's own batch, as the release computed it (8 GPUs x 2 items, gradients averaged);
    "utterance" pairs frames of the same item (mean over all such pairs); "global" pairs all
    frames of the global batch, to be called inside `jax.shard_map` over the data axis `axis_name`:
    frames travel round a ring of devices, the N x N matrix is never formed. block_size=None forms
    the pool's matrix at once (the release's naive form); an int computes it block by block (memory
    O(block^2)) with an exact custom gradient.
    """
    w = _check(p, s, mask, same_width=False)
    if pooling not in POOLINGS:
        raise ValueError(f"alignment: pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "global" and axis_name is None:
        raise ValueError("alignment: pooling='global' needs axis_name (inside jax.shard_map); from a "
                         "jitted step use sharded_distance_matrix / alignment_terms(..., mesh=mesh)")
    pn, sn, m = _normalise(_f32(p)), _normalise(_f32(s)), _f32(margin)
    if pooling == "utterance":
        sums = jax.vmap(lambda a, b, v: _pair_sum(a, b, v, m, block_size))(pn, sn, w)
        return jnp.sum(sums) / jnp.maximum(jnp.sum(jnp.sum(w, axis=1) ** 2), 1.0)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    if pooling == "device":
        k = p.shape[0] if pool_items is None else int(pool_items)
        if k <= 0 or p.shape[0] % k:
            raise ValueError(f"alignment: pool_items={pool_items} must divide the batch of {p.shape[0]} items")
        groups = lambda x: x.reshape((p.shape[0] // k, k * x.shape[1]) + x.shape[2:])
        sums = jax.vmap(lambda a, b, v: _pair_sum(a, b, v, m, block_size))(groups(pn), groups(sn), groups(w))
        return jnp.mean(sums / jnp.maximum(jnp.sum(groups(w), axis=1) ** 2, 1.0))
    axis = axis_name if pooling == "global" else None
    total = _pair_sum(flat(pn), flat(sn), flat(w), m, block_size, axis)
    count = jnp.sum(w)
    if axis is not None:
        count = jax.lax.psum(count, axis)
    return total / jnp.maximum(count * count, 1.0)


def sharded_distance_matrix(p: jax.Array, s: jax.Array, mask: jax.Array, mesh, margin=0.25,
                            block_size: int | None = None,
                            axis_name: str | tuple[str, ...] = ("data", "fsdp")) -> jax.Array:
    """"global" pooling from a jitted (GSPMD) step: arrays batch-sharded over the mesh axes
    axis_name; wraps `jax.shard_map` around marginal_distance_matrix(pooling="global")."""
    spec = jax.sharding.PartitionSpec(axis_name)
    fn = lambda p, s, mask, margin: marginal_distance_matrix(p, s, mask, margin, "global", block_size,
                                                           axis_name)
    return jax.shard_map(fn, mesh=mesh, in_specs=(spec, spec, spec, jax.sharding.PartitionSpec()),
                         out_specs=jax.sharding.PartitionSpec())(p, s, mask, _f32(margin))


def joint_marginal(p: jax.Array, s: jax.Array, mask: jax.Array, margin_cos=0.5, margin_matrix=0.25,
                   pooling: str = "batch", block_size: int | None = None,
                   axis_name: str | None = None, p_low: jax.Array | None = None,
                   s_low: jax.Array | None = None, pool_items: int | None = None) -> dict[str, jax.Array]:
    """The proposal: {"mcos": marginal_cosine, "mdms": marginal_distance_matrix}, kept apart so each
    gets its own adaptive weight. With p_low/s_low (two teacher layers) the matrix term uses them."""
    p_m = p if p_low is None else p_low
    s_m = s if s_low is None else s_low
    return {"mcos": marginal_cosine(p, s, mask, margin_cos),
            "mdms": marginal_distance_matrix(p_m, s_m, mask, margin_matrix, pooling, block_size,
                                             axis_name, pool_items)}


SCHEME_TERMS = {
    "joint_marginal": ("mcos", "mdms"),
    "time_axis": ("time_cos",),
    "speechtokenizer_t": ("st_t",),
    "d_axis": ("d_axis",),
    "marginal_cosine": ("mcos",),
    "distance_matrix": ("mdms",),
    "none": (),
}


def alignment_terms(align_cfg, p: jax.Array, s: jax.Array, mask: jax.Array,
                    p_low: jax.Array | None = None, s_low: jax.Array | None = None,
                    margins_on=True, axis_name=None, mesh=None) -> dict[str, jax.Array]:
    """Unweighted terms selected by align_cfg.scheme (keys in SCHEME_TERMS).

    Two-teacher-layer mode (align_cfg.teacher_layer_low set): the matrix term compares
    (p_low or p, s_low), the other terms (p, s). margins_on (bool, may be traced) = False sets both
    margins to 0, the "margins off" phase of the staged schedule. pooling "global": pass `mesh`
    from a jitted step (arrays batch-sharded over axis_name, default ("data", "fsdp")), or only
    `axis_name` when already inside `jax.shard_map`. pooling "device": pools of
    `device_pool_items(align_cfg, B, mesh)` items.
    """
    scheme = align_cfg.scheme
    if scheme not in SCHEME_TERMS:
        raise ValueError(f"alignment.scheme must be one of {tuple(SCHEME_TERMS)}, got {scheme!r}")
    names = SCHEME_TERMS[scheme]
    two_layer = align_cfg.get("teacher_layer_low") is not None
    if two_layer and "mdms" in names and s_low is None:
        raise ValueError("alignment.teacher_layer_low is set: pass s_low (the lower layer's frames)")
    on = _f32(margins_on)
    out = {}
    if "time_cos" in names:
        out["time_cos"] = time_axis_cosine(p, s, mask)
    if "st_t" in names:
        out["st_t"] = speechtokenizer_t_axis(p, s, mask, align_cfg.sim_weight)
    if "d_axis" in names:
        out["d_axis"] = d_axis(p, s, mask)
    if "mcos" in names:
        out["mcos"] = marginal_cosine(p, s, mask, on * align_cfg.margin_cos)
    if "mdms" in names:
        p_m, s_m = (p if p_low is None else p_low, s_low) if two_layer else (p, s)
        pooling, block = align_cfg.pooling, align_cfg.get("block_size")
        margin = on * align_cfg.margin_matrix
        if pooling == "global" and mesh is not None:
            out["mdms"] = sharded_distance_matrix(p_m, s_m, mask, mesh, margin, block,
                                                  axis_name or ("data", "fsdp"))
        else:
            out["mdms"] = marginal_distance_matrix(p_m, s_m, mask, margin, pooling, block,
                                                   axis_name if pooling == "global" else None,
                                                   device_pool_items(align_cfg, p.shape[0], mesh))
    return out


def device_pool_items(align_cfg, batch: int, mesh=None) -> int:
    """Items per distance-matrix pool under pooling "device": align_cfg.pool_items when set, else the
    per-device batch (batch / the mesh's batch shards; the whole batch without a mesh)."""
    if align_cfg.get("pool_items") is not None:
        return int(align_cfg.pool_items)
    shards = 1
    if mesh is not None:
        shards = int(np.prod([mesh.shape[a] for a in ("data", "fsdp") if a in mesh.shape]))
    return max(batch // shards, 1)


def term_names(align_cfg) -> tuple[str, ...]:
    """The scheme's terms that carry weight: none if hyper_weight is 0, and none whose
    align_cfg.term_weights entry is 0 (those are not computed)."""
    if align_cfg.scheme not in SCHEME_TERMS:
        raise ValueError(f"alignment.scheme must be one of {tuple(SCHEME_TERMS)}, "
                         f"got {align_cfg.scheme!r}")
    if align_cfg.hyper_weight == 0:
        return ()
    weights = align_cfg.get("term_weights") or {}
    return tuple(k for k in SCHEME_TERMS[align_cfg.scheme] if weights.get(k, 1.0) != 0)
