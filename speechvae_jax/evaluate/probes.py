"""Probes on frozen features, trained in JAX/optax: a classifier on vectors (frames, or utterances
mean-pooled by `mean_pool`) and a CTC sequence probe on ragged utterances.

A probe reads fixed features (a VAE latent, teacher features, log-mel) and learns only a small head:
`"linear"` (one affine map) or `"mlp"` (two affine maps with a ReLU between, `hidden` units).
With `layered=True` the features hold K layers per frame ([..., K, D], e.g. every hidden state of a
teacher) and the probe also learns one weight per layer: the head reads the softmax-weighted sum of
the layers (SUPERB's weighted-sum featurizer), trained jointly with the head.
Features are standardised per dimension (per layer and dimension when layered) with the training
set's statistics over valid frames. Padded frames (mask 0) never enter a loss, a statistic or a score.

Shapes: M = frames or utterances, D = feature width, K = layers, B = utterances, T = frames,
U = label length.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

HEADS = ("linear", "mlp")


# ----------------------------------------------------------------------------------------------
# Heads: explicit parameter pytrees.

def init_head(rng: jax.Array, in_dim: int, out_dim: int, head: str = "linear",
              hidden: int = 256, num_layers: int = 0) -> dict:
    """Parameters `{"layers": [{"w" [i,o], "b" [o]}, ...]}` of a linear or 2-layer MLP head, plus
    `"mix"` [num_layers] layer logits (zeros: equal weights) when num_layers > 0."""
    if head not in HEADS:
        raise ValueError(f"unknown probe head {head!r}; one of {HEADS}")
    dims = [in_dim, out_dim] if head == "linear" else [in_dim, hidden, out_dim]
    keys = jax.random.split(rng, len(dims) - 1)
    layers = []
    for key, d_in, d_out in zip(keys, dims[:-1], dims[1:]):
        w = jax.random.normal(key, (d_in, d_out), jnp.float32) * np.sqrt(1.0 / d_in)
        layers.append({"w": w, "b": jnp.zeros((d_out,), jnp.float32)})
    params = {"layers": layers}
    if num_layers:
        params["mix"] = jnp.zeros((num_layers,), jnp.float32)
    return params


def mix_layers(params: dict, x: jax.Array) -> jax.Array:
    """x [..., K, D] -> the softmax(`mix`)-weighted sum over K [..., D] when params has "mix";
    otherwise x unchanged."""
    if "mix" not in params:
        return x
    return jnp.einsum("...kd,k->...d", x.astype(jnp.float32), jax.nn.softmax(params["mix"]))


def layer_weights(params: dict) -> list[float]:
    """The learned layer weights (softmax of `mix`), [] for a head without layers."""
    return [float(w) for w in jax.nn.softmax(params["mix"])] if "mix" in params else []


def apply_head(params: dict, x: jax.Array) -> jax.Array:
    """Logits [..., out] of features x [..., in]; ReLU between layers."""
    layers = params["layers"]
    h = x.astype(jnp.float32)
    for i, layer in enumerate(layers):
        h = h @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            h = jax.nn.relu(h)
    return h


# ----------------------------------------------------------------------------------------------
# Feature helpers.

def standardizer(x: np.ndarray, mask: np.ndarray | None = None,
                 feature_ndim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, std) of x [..., F] over entries where mask [...] is 1; F is the last
    `feature_ndim` axes ([D], or [K, D] for layered features). Accumulates in float64."""
    x = np.asarray(x)
    flat = x.reshape((-1,) + x.shape[x.ndim - feature_ndim:])
    if mask is not None:
        flat = flat[np.asarray(mask).reshape(-1) > 0]
    if len(flat) == 0:
        raise ValueError("no valid frames to standardise over")
    return (flat.mean(0, dtype=np.float64).astype(np.float32),
            (flat.std(0, dtype=np.float64) + 1e-5).astype(np.float32))


def valid_frames(x: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten padded x [B,T,D] and frame labels [B,T] to the valid frames: ([M,D], [M])."""
    keep = np.asarray(mask).reshape(-1) > 0
    return (np.asarray(x).reshape(-1, x.shape[-1])[keep],
            np.asarray(labels).reshape(-1)[keep])


def mean_pool(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over valid frames: x [B,T,...], mask [B,T] -> [B,...]. An empty utterance is an error."""
    count = np.asarray(mask, np.float32).sum(1)
    if np.any(count == 0):
        raise ValueError(f"utterances with no valid frames at rows {np.where(count == 0)[0].tolist()}")
    m = np.asarray(mask, np.float32).reshape(np.shape(mask) + (1,) * (np.ndim(x) - 2))
    return (np.asarray(x, np.float32) * m).sum(1) / count.reshape((-1,) + (1,) * (np.ndim(x) - 2))


def stack_context(x: jax.Array, mask: jax.Array, context: int) -> jax.Array:
    """Concatenate each frame with its `context` neighbours on each side (zeros outside the valid
    region): x [B,T,D], mask [B,T] -> [B,T,(2*context+1)*D] (jnp; runs inside the jitted probe)."""
    if context == 0:
        return x
    xm = x * mask[..., None]
    padded = jnp.pad(xm, ((0, 0), (context, context), (0, 0)))
    t = x.shape[1]
    return jnp.concatenate([padded[:, k:k + t] for k in range(2 * context + 1)], axis=-1)


def _epoch_indices(n: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """[steps, batch] indices: successive shuffled epochs over n items (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(need // n + 1)])
    return order[:need].reshape(steps, batch_size)


PROGRESS_CHUNKS = 10   # a probe's steps run as this many jitted scans, one progress-bar tick each


@functools.cache
def _trainer(loss_fn: Callable, lr: float, weight_decay: float) -> tuple[Callable, Callable]:
    """(init, run): AdamW on `loss_fn(params, *batch)`; jitted `run((params, opt_state), data,
    idx [steps, batch]) -> ((params, opt_state), losses [steps])` is one scan. Cached, so seeds with
    equal shapes share a compilation."""
    opt = optax.adamw(lr, weight_decay=weight_decay)

    @jax.jit
    def run(carry, data, idx):
        def step(carry, batch_idx):
            p, s = carry
            batch = tuple(a[batch_idx] for a in data)
            loss, grads = jax.value_and_grad(loss_fn)(p, *batch)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), loss

        return jax.lax.scan(step, carry, idx)

    return opt.init, run


def _fit(loss_fn: Callable, params: dict, data: tuple, idx: np.ndarray, lr: float,
         weight_decay: float, desc: str = "probe") -> tuple[dict, np.ndarray]:
    """Train `params` on `loss_fn` over the index batches idx [steps, batch]; (params, losses).

    The steps run in `PROGRESS_CHUNKS` near-equal scans (at most two shapes to compile) behind a
    progress bar; the result equals one scan over all steps."""
    init, run = _trainer(loss_fn, float(lr), float(weight_decay))
    data = tuple(jnp.asarray(a) for a in data)
    carry, losses = (params, init(params)), []
    chunks = [c for c in np.array_split(np.asarray(idx), min(PROGRESS_CHUNKS, len(idx))) if len(c)]
    with tqdm.tqdm(total=len(idx), desc=desc, unit="step", leave=False) as bar:
        for chunk in chunks:
            carry, chunk_losses = run(carry, data, jnp.asarray(chunk))
            losses.append(np.asarray(chunk_losses))
            bar.update(len(chunk))
    return carry[0], np.concatenate(losses)


@jax.jit
def _argmax_logits(params: dict, x: jax.Array) -> jax.Array:
    return jnp.argmax(apply_head(params, mix_layers(params, x)), -1)


def _predict(params: dict, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Argmax class of x [M,...,D] in chunks: int [M,...]."""
    return np.concatenate([np.asarray(_argmax_logits(params, jnp.asarray(x[i:i + chunk])))
                           for i in range(0, len(x), chunk)])


# ----------------------------------------------------------------------------------------------
# Classification probes.

def _xent_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean cross-entropy of x [b,(K,)D] against integer labels y [b]."""
    return optax.softmax_cross_entropy_with_integer_labels(apply_head(params, mix_layers(params, x)), y).mean()

def _check_labels(y: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int32)


def _shape_check(name: str, x: np.ndarray, ndim: int, layered: bool) -> None:
    want = ndim + int(layered)
    if x.ndim != want:
        dims = {2: "[M,D]", 3: "[B,T,D]"}[ndim]
        dims = dims[:-2] + "K,D]" if layered else dims
        raise ValueError(f"expected {name} {dims}{' (layered)' if layered else ''}, got shape {x.shape}")


def train_frame_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, *, num_classes: int, head: str = "linear",
                      steps: int = 2000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                      hidden: int = 256, weight_decay: float = 1e-4, layered: bool = False) -> dict:
    """Train a classifier on vectors train_x [M,D] ([M,K,D] when layered) with labels train_y [M]
    in [0, num_classes); score test_x [M',D] against test_y [M'].

    Returns `{"accuracy", "train_accuracy", "final_loss", "num_train", "num_test", "chance"}`
    ("chance" = the test share of the training set's most frequent class), plus "layer_weights"
    [K] when layered."""
    train_x = np.asarray(train_x, np.float32)
    test_x = np.asarray(test_x, np.float32)
    _shape_check("train_x", train_x, 2, layered)
    _shape_check("test_x", test_x, 2, layered)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"train_x and test_x differ in feature shape: {train_x.shape}, {test_x.shape}")
    train_y = _check_labels(train_y, num_classes, "train_y")
    test_y = _check_labels(test_y, num_classes, "test_y")
    if len(train_y) != len(train_x) or len(test_y) != len(test_x):
        raise ValueError("features and labels differ in length")
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("empty train or test set")
    mu, sd = standardizer(train_x, feature_ndim=train_x.ndim - 1)
    xs, xt = (train_x - mu) / sd, (test_x - mu) / sd

    params = init_head(jax.random.PRNGKey(seed), train_x.shape[-1], num_classes, head, hidden,
                       num_layers=train_x.shape[1] if layered else 0)
    idx = _epoch_indices(len(xs), steps, min(batch_size, len(xs)), seed)
    params, losses = _fit(_xent_loss, params, (xs, train_y), idx, lr, weight_decay, "classifier probe")
    majority = np.bincount(train_y, minlength=num_classes).argmax()
    out = {
        "accuracy": float(np.mean(_predict(params, xt) == test_y)),
        "train_accuracy": float(np.mean(_predict(params, xs) == train_y)),
        "final_loss": float(losses[-max(1, steps // 20):].mean()),
        "num_train": int(len(xs)),
        "num_test": int(len(xt)),
        "chance": float(np.mean(test_y == majority)),
    }
    if layered:
        out["layer_weights"] = layer_weights(params)
    return out


# ----------------------------------------------------------------------------------------------
# CTC sequence probe.

def _ctc_logits(params: dict, x: jax.Array, mask: jax.Array, context: int) -> jax.Array:
    """Per-frame logits [b,T,tokens+1] of x [b,T,(K,)D]: layer mix, context stacking, head."""
    return apply_head(params, stack_context(mix_layers(params, x), mask, context))


@functools.cache
def _ctc_loss(context: int) -> Callable:
    """The CTC loss for a context width (one function object per width, so compilations are shared)."""

    def loss(params: dict, x: jax.Array, mask: jax.Array, ids: jax.Array, label_pad: jax.Array) -> jax.Array:
        """CTC loss per label token, mean over the batch: x [b,T,(K,)D], mask [b,T], ids/label_pad [b,U]."""
        per_seq = optax.ctc_loss(_ctc_logits(params, x, mask, context), 1.0 - mask, ids, label_pad, blank_id=0)
        return (per_seq / jnp.maximum(1.0, (1.0 - label_pad).sum(-1))).mean()

    return loss


@functools.partial(jax.jit, static_argnames="context")
def _ctc_argmax(params: dict, x: jax.Array, mask: jax.Array, context: int) -> jax.Array:
    return jnp.argmax(_ctc_logits(params, x, mask, context), -1)

def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return int(prev[-1])


def ctc_greedy_decode(best: np.ndarray, mask: np.ndarray, blank: int = 0) -> list[list[int]]:
    """Greedy CTC decoding of per-frame argmax ids best [B,T] over valid frames (mask [B,T]):
    merge repeats, then drop blanks."""
    out = []
    for row, m in zip(np.asarray(best), np.asarray(mask)):
        seq = row[np.asarray(m) > 0]
        keep = np.ones(len(seq), bool)
        keep[1:] = seq[1:] != seq[:-1]
        out.append([int(t) for t in seq[keep] if t != blank])
    return out


def _pad_labels(labels: Sequence[Sequence[int]], num_tokens: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Ragged token ids in [0, num_tokens) -> (ids + 1 [B,U] (0 = blank), paddings [B,U])."""
    width = max([len(seq) for seq in labels] + [1])
    ids = np.zeros((len(labels), width), np.int32)
    pad = np.ones((len(labels), width), np.float32)
    for b, seq in enumerate(labels):
        seq = np.asarray(seq, np.int64)
        if seq.size and (seq.min() < 0 or seq.max() >= num_tokens):
            raise ValueError(f"{name}[{b}]: token ids must lie in [0, {num_tokens})")
        ids[b, :len(seq)] = seq + 1
        pad[b, :len(seq)] = 0.0
    return ids, pad


def _ctc_feasible(labels: Sequence[Sequence[int]], frames: np.ndarray) -> np.ndarray:
    """bool [B]: CTC can emit the label in the frames (length plus one blank per repeat)."""
    need = np.array([len(seq) + sum(int(a == b) for a, b in zip(seq[:-1], seq[1:])) for seq in labels])
    return (need <= frames) & (need > 0)


def _ragged(name: str, xs: Sequence[np.ndarray], masks: Sequence[np.ndarray], labels: Sequence,
            layered: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Check per-utterance features xs[i] [T_i,(K,)D] and masks[i] [T_i] against len(labels)."""
    if len(xs) == 0 or len(masks) != len(xs) or len(labels) != len(xs):
        raise ValueError(f"{name}: expected non-empty, equally long lists of features, masks and labels, got "
                         f"{len(xs)}, {len(masks)}, {len(labels)}")
    xs = [np.asarray(x, np.float32) for x in xs]
    masks = [np.asarray(m, np.float32) for m in masks]
    for i, (x, m) in enumerate(zip(xs, masks)):
        _shape_check(f"{name}_x[{i}]", x[None], 3, layered)
        if x.shape[1:] != xs[0].shape[1:] or m.shape != x.shape[:1]:
            raise ValueError(f"{name}[{i}]: features {x.shape} and mask {m.shape} do not match "
                             f"utterance 0's feature shape {xs[0].shape[1:]}")
    return xs, masks


def _padded(xs: Sequence[np.ndarray], masks: Sequence[np.ndarray], mu: np.ndarray, sd: np.ndarray,
            frames: int, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features padded to `frames` (and `rows` >= B utterances, empty rows masked):
    (x [rows,frames,(K,)D], mask [rows,frames]); padding is 0."""
    x = np.zeros((rows or len(xs), frames) + xs[0].shape[1:], np.float32)
    m = np.zeros((rows or len(xs), frames), np.float32)
    for b, (xi, mi) in enumerate(zip(xs, masks)):
        x[b, :len(xi)] = (xi - mu) / sd
        m[b, :len(xi)] = mi
    return x, m


def length_batches(lengths: Sequence[int], frame_budget: int) -> list[np.ndarray]:
    """Indices of utterances grouped by length (ascending) so that each group's count times its
    longest length stays within `frame_budget` (a longer utterance goes alone): padding one group
    costs at most the budget (twice that after the scorer rounds the shape up), however long the
    longest utterance of the set."""
    groups, cur = [], []
    for i in np.argsort(np.asarray(lengths), kind="stable"):
        if cur and (len(cur) + 1) * lengths[i] > frame_budget:
            groups.append(np.array(cur))
            cur = []
        cur.append(int(i))
    return groups + ([np.array(cur)] if cur else [])


SCORING_FRAMES = 16384  # frames (x layers) per padded scoring batch of the CTC probe


def train_ctc_probe(train_x: Sequence[np.ndarray], train_mask: Sequence[np.ndarray],
                    train_labels: Sequence[Sequence[int]], test_x: Sequence[np.ndarray],
                    test_mask: Sequence[np.ndarray], test_labels: Sequence[Sequence[int]], *,
                    num_tokens: int, head: str = "linear", context: int = 0, steps: int = 2000,
                    batch_size: int = 16, lr: float = 1e-3, seed: int = 0, hidden: int = 256,
                    weight_decay: float = 1e-4, layered: bool = False,
                    max_train_frames: int | None = None) -> dict:
    """CTC sequence probe on ragged utterances: features x[i] [T_i,D] ([T_i,K,D] when layered), masks
    [T_i] and token ids in [0, num_tokens) per utterance; blank is an extra class. Each frame sees
    `context` neighbours on each side (stacked after the layer mix). Greedy decoding; the score is
    the token error rate sum(edit distance) / sum(reference length) over the test utterances.

    Training pads the kept utterances to the longest of them; training utterances whose label
    cannot fit their frames, or longer than `max_train_frames` (None = no cap), are skipped and
    counted. Scoring pads length-sorted groups of at most SCORING_FRAMES frames, so one long
    recording never inflates the rest; every test utterance is scored.

    Returns `{"error_rate", "train_error_rate", "final_loss", "num_train", "num_test",
    "skipped_train", "skipped_train_too_long"}` (+ "layer_weights" when layered)."""
    train_x, train_mask = _ragged("train", train_x, train_mask, train_labels, layered)
    test_x, test_mask = _ragged("test", test_x, test_mask, test_labels, layered)
    if train_x[0].shape[1:] != test_x[0].shape[1:]:
        raise ValueError(f"train and test features differ in shape: {train_x[0].shape[1:]}, {test_x[0].shape[1:]}")
    ids, lpad = _pad_labels(train_labels, num_tokens, "train_labels")
    _pad_labels(test_labels, num_tokens, "test_labels")
    lengths = np.array([len(x) for x in train_x])
    fits = _ctc_feasible(train_labels, np.array([m.sum() for m in train_mask]))
    short = lengths <= (max_train_frames or lengths.max())
    ok = fits & short
    if not ok.any():
        raise ValueError(f"no training utterance has a label that fits its frames ({int((~fits).sum())} do not) "
                         f"within max_train_frames={max_train_frames} ({int((~short).sum())} are longer)")
    keep = np.flatnonzero(ok)
    feature_ndim = train_x[0].ndim - 1
    mu, sd = standardizer(np.concatenate([train_x[i][train_mask[i] > 0] for i in keep]), feature_ndim=feature_ndim)
    xs, ms = _padded([train_x[i] for i in keep], [train_mask[i] for i in keep], mu, sd, int(lengths[keep].max()))
    ids, lpad = ids[keep], lpad[keep]

    in_dim = (2 * context + 1) * xs.shape[-1]
    params = init_head(jax.random.PRNGKey(seed), in_dim, num_tokens + 1, head, hidden,
                       num_layers=xs.shape[2] if layered else 0)
    idx = _epoch_indices(len(xs), steps, min(batch_size, len(xs)), seed)
    params, losses = _fit(_ctc_loss(int(context)), params, (xs, ms, ids, lpad), idx, lr, weight_decay,
                          "CTC probe")

    def error_rate(xs, masks, labels):
        per_frame = int(np.prod(xs[0].shape[1:-1], dtype=np.int64))  # K layers per frame, or 1
        errors = 0
        for group in length_batches([len(x) for x in xs], max(1, SCORING_FRAMES // per_frame)):
            # rows to a power of two, frames to a multiple of 128: few shapes to compile
            x, m = _padded([xs[i] for i in group], [masks[i] for i in group], mu, sd,
                           -(-max(len(xs[i]) for i in group) // 128) * 128, 1 << (len(group) - 1).bit_length())
            best = np.asarray(_ctc_argmax(params, jnp.asarray(x), jnp.asarray(m), int(context)))
            hyps = ctc_greedy_decode(best[:len(group)], m[:len(group)])
            errors += sum(edit_distance(list(labels[i]), [h - 1 for h in hy]) for i, hy in zip(group, hyps))
        return errors / max(1, sum(len(r) for r in labels))

    out = {
        "error_rate": float(error_rate(test_x, test_mask, test_labels)),
        "train_error_rate": float(error_rate([train_x[i] for i in keep], [train_mask[i] for i in keep],
                                             [train_labels[i] for i in keep])),
        "final_loss": float(losses[-max(1, steps // 20):].mean()),
        "num_train": int(len(keep)),
        "num_test": int(len(test_x)),
        "skipped_train": int((~fits).sum()),
        "skipped_train_too_long": int((fits & ~short).sum()),
    }
    if layered:
        out["layer_weights"] = layer_weights(params)
    return out


# ----------------------------------------------------------------------------------------------
# Seeds.

def over_seeds(probe: Callable[..., dict], seeds: Sequence[int] = (0, 1, 2), **kwargs) -> dict:
    """Run `probe(seed=s, **kwargs)` for each seed; `{"seeds", "runs", "mean", "std"}` where mean and
    std (population) cover every numeric key of the runs."""
    runs = [probe(seed=int(s), **kwargs) for s in seeds]
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    return {
        "seeds": [int(s) for s in seeds],
        "runs": runs,
        "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
        "std": {k: float(np.std([r[k] for r in runs])) for k in keys},
    }
