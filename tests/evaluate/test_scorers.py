"""Reconstruction scorers on real (flite) speech: ceilings, monotone degradation, ASR, speakers."""
import numpy as np
import pytest

from speechvae_jax.evaluate import scorers
from speechvae_jax.evaluate.scorers import asr, dnsmos, pesq_stoi, signal, speaker
from tests.evaluate.conftest import add_noise

SNRS = (30.0, 15.0, 5.0)


def test_identical_audio_scores_at_ceiling(flite_speech):
    a, _ = flite_speech["slt_a"]
    p = pesq_stoi.pesq_scores(a, a)
    s = pesq_stoi.stoi_scores(a, a)
    d = signal.spectral_distances(a, a)
    assert p["pesq_wb"] > 4.6 and p["pesq_nb"] > 4.5
    assert s["stoi"] > 0.999 and s["estoi"] > 0.999
    assert signal.si_sdr(a, a) > 100
    assert d["mel_distance"] < 1e-6 and d["mrstft_distance"] < 1e-6
    assert speaker.speaker_similarity(a, a)["speaker_sim"] > 0.999


def test_noise_lowers_scores_monotonically(flite_speech):
    a, _ = flite_speech["kal_b"]
    rows = []
    for snr in SNRS:
        n = add_noise(a, snr)
        rows.append({**pesq_stoi.pesq_scores(a, n), **pesq_stoi.stoi_scores(a, n),
                     "si_sdr": signal.si_sdr(a, n), **signal.spectral_distances(a, n)})
    for key in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr"):
        values = [r[key] for r in rows]
        assert all(x > y for x, y in zip(values, values[1:])), (key, values)
    for key in ("mel_distance", "mrstft_distance"):
        values = [r[key] for r in rows]
        assert all(x < y for x, y in zip(values, values[1:])), (key, values)
    np.testing.assert_allclose([r["si_sdr"] for r in rows], SNRS, atol=0.2)


def test_si_sdr_reference_value():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1000)
    ref -= ref.mean()
    noise = rng.normal(size=1000)
    noise -= noise.mean()
    noise -= noise @ ref / (ref @ ref) * ref  # orthogonal to ref
    est = 0.5 * ref + noise + 3.0  # scale and offset do not matter
    expected = 10 * np.log10((0.25 * ref @ ref) / (noise @ noise))
    np.testing.assert_allclose(signal.si_sdr(ref, est), expected, rtol=1e-9)
    with pytest.raises(ValueError, match="silent"):
        signal.si_sdr(np.zeros(10), ref[:10])


def test_pesq_rejects_silent_reference():
    with pytest.raises(ValueError, match="PESQ"):
        pesq_stoi.pesq_scores(np.zeros(16000), np.zeros(16000))


def test_text_normalisation():
    assert asr.normalize_text("  Don't  STOP -- the well-known, \"fine\" Day! ") == "don't stop the well known fine day"
    counts = asr.error_counts("The cat sat.", "the cat sat on")
    assert counts == {"words": 3, "word_errors": 1, "chars": 11, "char_errors": 3}


def test_pocketsphinx_clean_flite_sentences_have_low_wer(flite_speech):
    errors = words = 0
    for name in ("kal_a", "kal_b"):
        audio, text = flite_speech[name]
        out = asr.asr_errors(audio, text)
        errors += out["word_errors"]
        words += out["words"]
    assert errors / words <= 0.1
    noisy = asr.asr_errors(add_noise(flite_speech["kal_b"][0], -5.0), flite_speech["kal_b"][1])
    assert noisy["word_errors"] / noisy["words"] > errors / words


def test_dnsmos_prefers_clean_speech(flite_speech):
    a, _ = flite_speech["kal_a"]
    clean, noisy = dnsmos.dnsmos_scores(a), dnsmos.dnsmos_scores(add_noise(a, 0.0))
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] and clean["dnsmos_bak"] > noisy["dnsmos_bak"]


def test_speaker_similarity_separates_voices(flite_speech):
    same = speaker.speaker_similarity(flite_speech["slt_a"][0], flite_speech["slt_b"][0])["speaker_sim"]
    other = speaker.speaker_similarity(flite_speech["slt_a"][0], flite_speech["kal_a"][0])["speaker_sim"]
    assert same > other + 0.1


def test_score_utterance_and_aggregate(flite_speech):
    a, text = flite_speech["kal_a"]
    good = scorers.score_utterance(a, np.concatenate([a, np.zeros(300, np.float32)]), text)
    bad = scorers.score_utterance(np.zeros(8000, np.float32), np.zeros(8000, np.float32), "hello",
                                  dnsmos_on=False, asr_on=False)
    assert not good["errors"] and good["recon"]["pesq_wb"] > 4.5 and good["recon"]["word_errors"] == 0
    assert {"pesq", "si_sdr", "speaker"} <= set(bad["errors"])
    agg = scorers.aggregate([good, bad])
    assert agg["errors"]["pesq"] == 1 and agg["recon"]["n_pesq_wb"] == 1
    assert agg["recon"]["wer"] == 0.0 and agg["ground_truth"]["wer"] == 0.0
    assert agg["recon"]["dnsmos_ovrl"] == pytest.approx(agg["ground_truth"]["dnsmos_ovrl"], abs=0.05)
    assert set(scorers.versions()) == set(scorers.PACKAGES)


def _noise(seconds, seed=0, std=0.1):
    return (std * np.random.default_rng(seed).normal(size=int(seconds * 16000))).astype(np.float32)


def test_frame_comb_of_noise_is_flat_and_a_frame_rate_buzz_stands_out():
    noise = _noise(4.0, std=0.01)
    assert abs(signal.frame_comb_db(noise)) < 1.0
    pulses = np.zeros_like(noise)
    pulses[::400] = 0.5  # a click every latent frame (40 Hz): 12.5 dB by the formula below
    assert signal.frame_comb_db(noise + pulses) > 10.0
    # Tones at 50 Hz multiples: the ones off the 40 Hz grid do not make a comb.
    t = np.arange(len(noise)) / 16000.0
    tones50 = sum(0.001 * np.cos(2 * np.pi * 50 * k * t) for k in range(2, 20))
    assert abs(signal.frame_comb_db(noise + tones50.astype(np.float32))) < 1.5


def test_frame_comb_reference_value():
    # Tones of amplitude A on every multiple of 40 Hz over white noise of std s: with a Hann window of
    # N = 1600 samples, peak bin power / midpoint power = 1 + A^2 N / (6 s^2) (tone gain (A N / 4)^2,
    # noise gain s^2 * 3N / 8), the midpoints falling on the window's spectral zeros.
    a, s = 0.01, 0.1
    noise = _noise(16.0, seed=1, std=s)
    t = np.arange(len(noise)) / 16000.0
    tones = sum(a * np.cos(2 * np.pi * 40 * k * t + k) for k in range(1, 30))
    expected = 10 * np.log10(1 + a * a * 1600 / (6 * s * s))  # 5.64 dB
    assert signal.frame_comb_db((noise + tones).astype(np.float32)) == pytest.approx(expected, abs=0.4)


def test_signal_defects_dc_offset_and_short_input():
    out = signal.signal_defects(_noise(1.0) + 0.05)
    assert out["dc_offset"] == pytest.approx(0.05, abs=0.005)
    assert abs(out["frame_comb_db"]) < 2.0
    with pytest.raises(ValueError, match="frame comb"):
        signal.frame_comb_db(_noise(0.05))


def test_score_utterance_reports_defects_for_both_rows():
    ref = _noise(1.0, seed=2)
    res = scorers.score_utterance(ref, ref - 0.03, intrusive=(), dnsmos_on=False, asr_on=False)
    assert res["recon"]["dc_offset"] == pytest.approx(abs(ref.mean() - 0.03), rel=1e-4)
    assert res["ground_truth"]["dc_offset"] == pytest.approx(abs(ref.mean()), rel=1e-4)
    assert set(res["recon"]) == set(res["ground_truth"]) == {"dc_offset", "frame_comb_db"}


def _harmonic_complex(f0_hz: np.ndarray, harmonics: int = 8) -> np.ndarray:
    """A voiced-like signal [N]: harmonics 1..8 of the per-sample f0 track f0_hz [N], amplitude 1/k."""
    phase = 2 * np.pi * np.cumsum(f0_hz) / 16000.0
    return (0.1 * sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))).astype(np.float32)


def test_pitch_accuracy_reference_values():
    glide = np.linspace(120.0, 220.0, 32000)                   # 2 s rising intonation
    ref = _harmonic_complex(glide)
    same = signal.pitch_accuracy(ref, ref)
    assert same["vde"] == 0.0 and same["f0_rmse_cents"] < 5.0 and same["f0_corr"] > 0.999
    assert abs(same["f0_bias_cents"]) < 5.0
    sharp = signal.pitch_accuracy(ref, _harmonic_complex(glide * 2 ** (100 / 1200)))   # 100 cents sharp
    assert sharp["f0_rmse_cents"] == pytest.approx(100.0, abs=10.0) and sharp["f0_corr"] > 0.99
    assert sharp["f0_bias_cents"] == pytest.approx(100.0, abs=10.0)
    low = signal.pitch_accuracy(ref, _harmonic_complex(glide * 2 ** (-500 / 1200)))    # a fourth lower
    assert low["f0_bias_cents"] == pytest.approx(-500.0, abs=15.0) and low["f0_corr"] > 0.99
    wobble = 165.0 + 3.0 * np.sin(2 * np.pi * 5.0 * np.arange(32000) / 16000.0)    # flat contour, right mean
    flat = signal.pitch_accuracy(ref, _harmonic_complex(wobble))
    assert abs(flat["f0_corr"]) < 0.3 and flat["f0_rmse_cents"] > 200.0
    whisper = signal.pitch_accuracy(ref, _noise(2.0, seed=3, std=0.05))
    assert whisper["vde"] > 0.8 and "f0_rmse_cents" not in whisper
