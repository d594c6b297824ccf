import numpy as np

from speechvae_jax.dsp.frames import frame_mask


def _mask(lengths, n):
    return (np.arange(n)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


def test_latent_grid_frame_is_real_when_its_first_sample_is():
    m = frame_mask(_mask([0, 1, 400, 401, 1000], 1200), 3, hop=400)
    np.testing.assert_array_equal(np.asarray(m), [[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]])


def test_conv_geometry_counts_frames_as_the_layered_convolutions():
    kernels, strides = [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]  # WavLM / HuBERT: rf 400, hop 320
    lengths = np.array([0, 399, 400, 719, 720, 16000, 16399])
    layered = lengths.copy()
    for k, s in zip(kernels, strides):
        layered = (layered - k) // s + 1
    m = np.asarray(frame_mask(_mask(lengths, 16400), 60, hop=320, receptive_field=400))
    np.testing.assert_array_equal(m.sum(1), np.maximum(layered, 0))
