import librosa
import numpy as np
import pytest

from speechvae_jax.dsp import spectral
from tests.signals import tone_plus_noise


@pytest.mark.parametrize("n_fft,hop,win", [(256, 64, None), (100, 30, None), (128, 32, 96)])
def test_stft_matches_librosa(n_fft, hop, win):
    x = tone_plus_noise(1000)
    ours = np.asarray(spectral.stft(x, n_fft, hop, win))
    ref = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode="reflect").transpose(0, 2, 1)
    assert ours.shape == ref.shape == (2, 1 + 1000 // hop, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())


def test_stft_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        spectral.stft(np.zeros(100, np.float32), 32, 8)


def test_mel_filters_and_spectrogram_match_librosa():
    np.testing.assert_allclose(spectral.mel_filters(16000, 1024, 80),
                               librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80), atol=1e-6)
    x = tone_plus_noise(4000)
    ours = np.asarray(spectral.mel_spectrogram(x))
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=1024, hop_length=256, n_mels=80, power=1.0,
                                         pad_mode="reflect").transpose(0, 2, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * ref.max())


def test_log_mel_is_floored_log10_of_mel():
    x = tone_plus_noise(2000)
    np.testing.assert_allclose(spectral.log_mel(x), np.log10(np.maximum(np.asarray(spectral.mel_spectrogram(x)), 1e-5)),
                               rtol=1e-6)


@pytest.mark.parametrize("n_fft,hop,win,n", [(400, 100, None, 4000), (256, 64, 200, 1000), (100, 30, None, 997)])
def test_istft_inverts_stft(n_fft, hop, win, n):
    x = tone_plus_noise(n)
    spec = spectral.stft(x, n_fft, hop, win)
    y = np.asarray(spectral.istft(spec, n_fft, hop, win, length=n))
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-5 * np.abs(x).max())


def test_istft_matches_librosa_on_arbitrary_spectra():
    # Not every array is an STFT: the least-squares overlap-add must still agree with librosa's.
    rng = np.random.default_rng(0)
    spec = (rng.normal(size=(2, 9, 65)) + 1j * rng.normal(size=(2, 9, 65))).astype(np.complex64)
    ours = np.asarray(spectral.istft(spec, 128, 32, length=256))
    ref = librosa.istft(spec.transpose(0, 2, 1), n_fft=128, hop_length=32, length=256)
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("width", [9, 10])  # a multiple of the hop (chunked path) or not (scatter)
def test_overlap_add_equals_direct_sum(width):
    frames = np.random.default_rng(1).normal(size=(2, 4, width)).astype(np.float32)
    ref = np.zeros((2, 3 * 3 + width), np.float32)
    for f in range(4):
        ref[:, f * 3:f * 3 + width] += frames[:, f]
    np.testing.assert_allclose(np.asarray(spectral.overlap_add(frames, 3)), ref, rtol=1e-6, atol=1e-6)


def test_istft_rejects_bad_shapes():
    with pytest.raises(ValueError, match="istft expects"):
        spectral.istft(np.zeros((1, 5, 10), np.complex64), 32, 8)
    with pytest.raises(ValueError, match="exceeds"):
        spectral.istft(np.zeros((1, 5, 17), np.complex64), 32, 8, length=1000)
