"""The source-filter decoder (`model.decoder.kind = "harmonic"`): its excitation, shapes, f0 range,
gradient flow and the config switch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.models.harmonic_decoder import frames_to_samples, harmonic_excitation
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config


def _config(**harmonic):
    cfg = model_config("tiny")
    cfg.decoder.kind = "harmonic"
    cfg.decoder.istft.update(dim=32, intermediate=64, num_blocks=2)
    cfg.decoder.harmonic.update(harmonic)
    return cfg


@pytest.fixture(scope="module")
def small():
    model = SpeechVAE(_config())
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
    return model, params


@pytest.mark.parametrize("f0", [97.0, 210.0, 455.0])
def test_excitation_is_the_sum_of_harmonics_below_nyquist(f0):
    n = np.arange(1, 4001)
    r = 8000 / f0
    k = int(r)
    weights = [1.0] * (k - 1) + [r - k]   # the top one fades out towards Nyquist
    expected = sum(w * np.cos(2 * np.pi * h * f0 * n / 16000) for h, w in enumerate(weights, 1)) / np.sqrt(r)
    got = np.asarray(harmonic_excitation(jnp.full((1, 4000), f0), 16000))[0]
    np.testing.assert_allclose(got, expected, atol=1e-3 * np.sqrt(k))
    assert abs(float(np.mean(got ** 2)) - 0.5 * sum(w * w for w in weights) / r) < 0.01   # 4000 samples


def test_excitation_is_continuous_in_f0_where_a_harmonic_leaves_the_band():
    """Crossing f0 = 8000 / 40 Hz (the 40th harmonic reaches Nyquist) changes the excitation by as
    little as the f0 step does."""
    f0 = 200.0 + np.array([-1e-3, 1e-3])
    a, b = np.asarray(harmonic_excitation(jnp.asarray(np.repeat(f0[:, None], 4000, 1)), 16000))
    assert np.abs(a - b)[:200].max() < 0.02


def test_frames_to_samples_interpolates_between_frame_centres():
    x = jnp.asarray([[0.0, 4.0, 8.0]])
    np.testing.assert_allclose(frames_to_samples(x, 4)[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8])


def test_shapes_params_and_f0_range(small):
    model, params = small
    z = 3.0 * jax.random.normal(jax.random.key(1), (2, 10, 64))
    audio = jax.jit(lambda z: model.apply({"params": params}, z, method="decode"))(z)
    log_f0 = jax.jit(lambda z: model.apply({"params": params}, z, method="decode_pitch"))(z)
    assert audio.shape == (2, 4000) and log_f0.shape == (2, 20)
    assert np.all(np.isfinite(audio)) and float(jnp.abs(audio).max()) < 1.0
    f0 = np.exp(np.asarray(log_f0))
    assert np.all(f0 >= 60.0 - 1e-3) and np.all(f0 <= 500.0 + 1e-3)
    assert {"pitch_head", "harmonic_head", "head", "embed"} <= set(params["decoder"])


def _peak_harmonic(audio, f0):
    """(frequency of the strongest peak above 40 Hz in the middle of audio, its ratio to f0)."""
    spectrum = np.abs(np.fft.rfft(audio[2000:14000] * np.hanning(12000)))
    freqs = np.fft.rfftfreq(12000, 1 / 16000)
    peak = freqs[np.argmax(spectrum[freqs > 40]) + np.sum(freqs <= 40)]
    return peak, peak / f0


def _only_harmonics(params):
    """Params with the aperiodic part silenced, a flat harmonic filter and a constant f0."""
    dec = jax.tree.map(lambda x: x, params)
    dec["decoder"]["head"]["bias"] = dec["decoder"]["head"]["bias"].at[:399].set(-30.0)
    dec["decoder"]["head"]["kernel"] = jnp.zeros_like(dec["decoder"]["head"]["kernel"])
    dec["decoder"]["harmonic_head"]["kernel"] = jnp.zeros_like(dec["decoder"]["harmonic_head"]["kernel"])
    dec["decoder"]["harmonic_head"]["bias"] = jnp.full_like(dec["decoder"]["harmonic_head"]["bias"], -1.0)
    dec["decoder"]["pitch_head"]["kernel"] = jnp.zeros_like(dec["decoder"]["pitch_head"]["kernel"])
    return dec


def test_output_follows_the_predicted_f0(small):
    """With the aperiodic part silenced and a flat filter, the decoded spectrum peaks at multiples of
    the f0 the pitch head reads out."""
    model, params = small
    dec = _only_harmonics(params)
    z = jax.random.normal(jax.random.key(2), (1, 40, 64))
    audio = np.asarray(model.apply({"params": dec}, z, method="decode"))[0]
    f0 = float(np.exp(model.apply({"params": dec}, z, method="decode_pitch"))[0, 0])
    peak, ratio = _peak_harmonic(audio, f0)
    assert abs(ratio - round(ratio)) < 0.02 and round(ratio) >= 1, (peak, f0)


def test_f0_override_drives_the_excitation_where_it_is_used(small):
    """Teacher forcing: with `f0_override` (137 Hz, used on every frame) the harmonics sit on 137 Hz,
    whatever the head predicts; with `use` all false the output is the unforced decode."""
    model, params = small
    dec = _only_harmonics(params)
    z = jax.random.normal(jax.random.key(2), (1, 40, 64))
    forced = (jnp.full((1, 80), 137.0), jnp.ones((1, 80), bool))
    audio = np.asarray(model.apply({"params": dec}, z, forced, method="decode"))[0]
    peak, ratio = _peak_harmonic(audio, 137.0)
    assert abs(ratio - round(ratio)) < 0.02 and round(ratio) >= 1, peak
    unused = (forced[0], jnp.zeros((1, 80), bool))
    np.testing.assert_allclose(model.apply({"params": dec}, z, unused, method="decode"),
                               model.apply({"params": dec}, z, method="decode"), atol=1e-6)


def test_gradients_reach_every_decoder_parameter(small):
    model, params = small
    z = jax.random.normal(jax.random.key(3), (1, 10, 64))

    def loss(p):
        y = model.apply({"params": p}, z, method="decode")
        return jnp.mean(y ** 2) + jnp.mean(model.apply({"params": p}, z, method="decode_pitch"))

    grads = jax.jit(jax.grad(loss))(params)["decoder"]
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0, jax.tree_util.keystr(path)


def test_bad_f0_range_is_reported():
    with pytest.raises(ValueError, match="f0_min < f0_max"):
        jax.eval_shape(SpeechVAE(_config(f0_min=300.0, f0_max=200.0)).init, jax.random.key(0), jnp.zeros((1, 800)))
