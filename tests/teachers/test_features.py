"""Teacher targets: layer choice, 50 -> 40 Hz resampling (odd lengths, masks), against torch and numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.teachers.features import resample_frames, select_layers, target_frame_mask, teacher_targets

torch = pytest.importorskip("torch")


def _np_linear(x, t_out):
    """Independent reference: align_corners=False linear resize of x [B,T,D] along T."""
    b, t_in, d = x.shape
    out = np.zeros((b, t_out, d), np.float64)
    for t in range(t_out):
        src = max((t + 0.5) * t_in / t_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), t_in - 1)
        hi = min(lo + 1, t_in - 1)
        w = src - lo
        out[:, t] = (1 - w) * x[:, lo] + w * x[:, hi]
    return out


@pytest.mark.parametrize("t_in,t_out", [(102, 82), (101, 81), (7, 5), (149, 120), (5, 8), (1, 3)])
def test_linear_matches_torch_and_numpy(t_in, t_out):
    x = np.random.default_rng(t_in).standard_normal((2, t_in, 3)).astype(np.float32)
    ours = np.asarray(resample_frames(jnp.asarray(x), t_out, "linear"))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).transpose(1, 2), size=t_out, mode="linear",
                                          align_corners=False).transpose(1, 2).numpy()
    np.testing.assert_allclose(ours, ref, atol=5e-5)  # torch uses a float32 scale
    np.testing.assert_allclose(ours, _np_linear(x, t_out), atol=1e-5)


@pytest.mark.parametrize("t_in,t_out", [(102, 82), (101, 81), (7, 5), (149, 120)])
def test_avgpool_matches_torch(t_in, t_out):
    x = np.random.default_rng(t_out).standard_normal((2, t_in, 3)).astype(np.float32)
    ours = np.asarray(resample_frames(jnp.asarray(x), t_out, "avgpool"))
    ref = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(x).transpose(1, 2), t_out)
    np.testing.assert_allclose(ours, ref.transpose(1, 2).numpy(), atol=1e-5)


def test_select_layers():
    hs = [jnp.full((1, 2, 3), float(i)) for i in range(5)]
    assert float(select_layers(hs, 3)[0, 0, 0]) == 3.0
    assert float(select_layers(hs, -1)[0, 0, 0]) == 4.0
    assert float(select_layers(hs, [1, 4])[0, 0, 0]) == 2.5
    assert float(select_layers(hs, "average")[0, 0, 0]) == 2.0
    with pytest.raises(ValueError, match="out of range"):
        select_layers(hs, 5)
    with pytest.raises(ValueError, match="average"):
        select_layers(hs, "mean")
    with pytest.raises(ValueError, match="empty"):
        select_layers(hs, [])


def test_unpadded_crop_keeps_every_frame():
    # A 32768-sample crop: 102 teacher frames (receptive field 400, hop 320) -> 82 latent frames.
    hs = [jnp.ones((2, 102, 4))]
    s, mask = teacher_targets(hs, 0, 82, jnp.ones((2, 32768)))
    assert s.shape == (2, 82, 4) and s.dtype == jnp.float32
    assert bool(mask.all())


@pytest.mark.parametrize("method", ["linear", "avgpool"])
def test_padded_batch_mask_and_zeros(method):
    n, lengths = 16001, np.array([16001, 9877])  # odd lengths
    t_in = (n - 400) // 320 + 1
    t_out = -(-n // 400)
    sample_mask = (np.arange(n)[None] < lengths[:, None]).astype(np.float32)
    x = np.random.default_rng(0).standard_normal((2, t_in, 3)).astype(np.float32)
    s, mask = jax.jit(teacher_targets, static_argnums=(1, 2, 4))([jnp.asarray(x)], 0, t_out,
                                                                   jnp.asarray(sample_mask), method)
    mask = np.asarray(mask)
    # Reference rule, written out: latent frame exists and reads only real teacher frames.
    for b, length in enumerate(lengths):
        teacher_len = (length - 400) // 320 + 1
        for t in range(t_out):
            if method == "linear":
                src = max((t + 0.5) * t_in / t_out - 0.5, 0.0)
                last = int(np.ceil(src)) if src > np.floor(src) else int(src)
            else:
                last = int(np.ceil((t + 1) * t_in / t_out)) - 1
            expect = t < -(-length // 400) and min(last, t_in - 1) < teacher_len
            assert mask[b, t] == expect, (b, t)
    assert mask[0].all() and not mask[1].all()
    assert mask[1].sum() >= -(-9877 // 400) - 2  # at most the tail frames are lost
    np.testing.assert_array_equal(np.asarray(s)[~mask], 0.0)
    full = np.asarray(resample_frames(jnp.asarray(x), t_out, method))
    np.testing.assert_allclose(np.asarray(s)[mask], full[mask], atol=1e-6)


def test_mask_rejects_too_short_audio():
    mask = target_frame_mask(jnp.array([[1.0] * 300 + [0.0] * 500]), 2, 2)
    assert not bool(mask.any())
