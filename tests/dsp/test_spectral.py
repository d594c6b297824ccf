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
