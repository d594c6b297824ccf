"""Exact padded / windowed application of a local network (no model needed)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.export import stitch

RNG = np.random.default_rng(0)
W1, W2 = RNG.standard_normal(4).astype(np.float32), RNG.standard_normal(3).astype(np.float32)


def _conv(x, w, pad):
    """x [B, N] -> [B, N]: correlation with w, explicit (left, right) zero padding."""
    return jax.lax.conv_general_dilated(x[:, None, :], jnp.asarray(w)[None, None, :], (1,), [pad])[:, 0]


def local_net(x):
    """A causal conv (field 3 left) then a centred one (1, 1): field (4 left, 1 right) frames;
    biases and tanh make padded positions non-zero, so careless padding would change results."""
    h = jnp.tanh(_conv(x, W1, (3, 0)) + 0.3)
    return jnp.tanh(_conv(h, W2, (1, 1)) - 0.2)


def test_receptive_field_is_measured_exactly():
    assert stitch.receptive_field(local_net, (), in_per_frame=1, out_per_frame=1, probe_frames=16) == (4, 1)


def test_global_network_is_rejected():
    with pytest.raises(ValueError, match="not local"):
        stitch.receptive_field(lambda x: x - jnp.mean(x, axis=1, keepdims=True), (), in_per_frame=1,
                               out_per_frame=1, probe_frames=8, max_frames=32)


@pytest.mark.parametrize("frames", [1, 5, 9, 17, 40, 113])
def test_pieces_cover_every_frame_once_with_context(frames):
    left, right = 4, 3
    pieces = stitch.plan_pieces(0, frames, left, right, (12, 24))
    kept = np.zeros(frames, int)
    for p in pieces:
        assert p.length in (12, 24)
        kept[p.start + p.keep_from:p.start + p.keep_to] += 1
        assert p.start == 0 or p.keep_from >= left  # real left context, or the item's own start
        assert p.keep_to + right <= p.length  # right context inside the piece
    np.testing.assert_array_equal(kept, 1)


def test_buckets_must_exceed_field():
    with pytest.raises(ValueError, match="receptive field"):
        stitch.plan_pieces(0, 100, 4, 4, (8,))


def test_run_padded_equals_canonical_for_any_buckets():
    left, right = 4, 1
    lengths = [3, 7, 12, 30, 57]
    items = [RNG.standard_normal(n).astype(np.float32) for n in lengths]
    canonical = [np.asarray(local_net(jnp.asarray(np.pad(x, (0, right))[None])))[0, :len(x)] for x in items]
    for buckets, budget in [((8, 16, 64), 64), ((10,), 10), ((16,), 48)]:
        out = stitch.run_padded(local_net, items, lengths, in_per_frame=1, out_per_frame=1, left=left,
                                right=right, buckets=buckets, frames_per_batch=budget)
        for got, want in zip(out, canonical):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # Without the right context the last frame differs: the check above is not vacuous.
    plain = np.asarray(local_net(jnp.asarray(items[2][None])))[0]
    assert np.abs(plain[-1] - canonical[2][-1]) > 1e-3


def test_run_padded_frames_with_several_samples_and_pytree_outputs():
    """in_per_frame = 2 (a stride-2 network) returning a tuple, as the encoder does."""
    def net(x):
        y = local_net(x)[:, ::2]
        return y, 2 * y

    lengths = [5, 19]
    items = [RNG.standard_normal(2 * n - 1).astype(np.float32) for n in lengths]
    left, right = stitch.receptive_field(net, (), in_per_frame=2, out_per_frame=1, probe_frames=16)
    out = stitch.run_padded(net, items, lengths, in_per_frame=2, out_per_frame=1, left=left, right=right,
                            buckets=(10,), frames_per_batch=20)
    for x, n, (a, b) in zip(items, lengths, out):
        want = np.asarray(net(jnp.asarray(np.pad(x, (0, 2 * (n + right) - len(x)))[None]))[0])[0, :n]
        np.testing.assert_allclose(a, want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b, 2 * want, rtol=0, atol=1e-6)


def test_receptive_field_survives_a_saturating_output():
    """tanh(1e4 * linear net): at unit input scale tanh saturates and its gradient is exactly zero
    almost everywhere; a smaller probe scale still sees the field."""
    def loud(x):
        return jnp.tanh(1e4 * _conv(_conv(x, W1, (3, 0)), W2, (1, 1)))

    x = jax.random.normal(jax.random.PRNGKey(0), (1, 16))
    g = jax.grad(lambda v: jnp.sum(loud(v)[:, 8]))(x)
    assert np.count_nonzero(np.asarray(g)) < 6  # saturated at scale 1: the field is mostly hidden

    assert stitch.receptive_field(loud, (), in_per_frame=1, out_per_frame=1, probe_frames=16) == (4, 1)
