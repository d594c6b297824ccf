"""`speechvae decode`: wavs of exported latents equal the direct reconstruction."""
import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.data.sources import open_source
from speechvae_jax.export import codec, decode, writer

PAD = 32000
ZPAD = 80  # 2 s of zero frames: far more than the decoder's receptive field


@pytest.fixture(scope="module")
def some_speech(tiny_corpus):
    src = open_source(tiny_corpus, "test")
    return [src[i] for i in range(3)]


@pytest.fixture(scope="module")
def loud_model(tiny_model, some_speech):
    """The tiny model with its output conv scaled up: BigVGAN's N(0, 0.01^2) init makes a random
    decoder whisper (~1e-9), below 16-bit resolution; scaled, it peaks near 0.5 on this speech."""
    import jax

    from speechvae_jax.engine.checkpoint import params_hash
    from speechvae_jax.inference import InferenceModel

    quiet = direct_reconstruction(tiny_model, [u["audio"] for u in some_speech[:1]])[0]
    gain = 0.5 / np.abs(quiet).max()
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tiny_model.params["decoder"])
    out_conv = [i for i, (path, leaf) in enumerate(leaves) if leaf.ndim == 3 and leaf.shape[-1] == 1]
    assert len(out_conv) == 1, "expected one output conv kernel [k, C, 1] in the decoder"
    new = [leaf * gain if i == out_conv[0] else leaf for i, (_, leaf) in enumerate(leaves)]
    params = {**tiny_model.params, "decoder": jax.tree_util.tree_unflatten(treedef, new)}
    return InferenceModel(config=tiny_model.config, params=params, step=tiny_model.step,
                          checkpoint_hash=params_hash(params))


def direct_reconstruction(model, audios):
    """Reference: encode each whole utterance and decode its mean in one call each, zero-padded far
    past the end (one length for all, one compilation) -> [audio float32 [N_i]]."""
    width = max(len(a) for a in audios) + PAD
    mean, _, _ = model.encode(np.stack([np.pad(a, (0, width - len(a))) for a in audios]))
    frames = [-(-len(a) // model.hop) for a in audios]
    mean = np.asarray(mean)
    z = np.zeros((len(audios), max(frames) + ZPAD, model.latent_dim), np.float32)
    for i, t in enumerate(frames):
        z[i, :t] = mean[i, :t]
    out = np.asarray(model.decode(z))
    return [np.clip(out[i, :len(a)], -1, 1) for i, a in enumerate(audios)]


def export(model, utts, out, dtype):
    writer.export_model(model, utts, str(out), source_spec="test", split="test",
                        options=writer.ExportOptions(dtype=dtype))


def test_decoded_wavs_equal_direct_reconstruction(loud_model, some_speech, tmp_path):
    want = direct_reconstruction(loud_model, [u["audio"] for u in some_speech])
    assert all(0.1 < np.abs(w).max() < 1 for w in want)
    export(loud_model, some_speech, tmp_path / "lat32", "float32")
    export(loud_model, some_speech, tmp_path / "lat16", "float16")
    # float32: only the 16-bit wav rounding (1/32768). float16: the latent rounding (relative 2^-11)
    # passes through the decoder; measured max errors 0.2% to 0.3% of the peak, RMS errors ~0.05%.
    for dtype in ("32", "16"):
        paths = decode.decode_model_latents(loud_model, str(tmp_path / f"lat{dtype}"), str(tmp_path / f"wav{dtype}"))
        assert len(paths) == len(some_speech)
        for utt, path, ref in zip(some_speech, paths, want):
            audio, rate = sf.read(path, dtype="float32")
            info = sf.info(path)
            assert rate == 16000 and info.subtype == "PCM_16" and info.channels == 1
            assert path.endswith(decode.wav_name(utt["id"])) and len(audio) == len(utt["audio"])
            err, peak = np.abs(audio - ref), np.abs(ref).max()
            if dtype == "32":
                assert err.max() <= 1.0 / 32768 + 1e-6
            else:
                assert err.max() <= 0.01 * peak and np.sqrt(np.mean(err ** 2)) <= 0.001 * peak

def test_decode_from_run_directory_selects_ids(tiny_run, tiny_model, some_speech, tmp_path):
    export(tiny_model, some_speech, tmp_path / "lat", "float16")
    uid = some_speech[1]["id"]
    paths = decode.decode_latents(tiny_run, str(tmp_path / "lat"), str(tmp_path / "wav"), ids=[uid])
    assert [p.rsplit("/", 1)[-1] for p in paths] == [decode.wav_name(uid)]
    assert len(sf.read(paths[0])[0]) == len(some_speech[1]["audio"])
    with pytest.raises(KeyError, match="no-such-id"):
        decode.decode_latents(tiny_run, str(tmp_path / "lat"), str(tmp_path / "wav"), ids=["no-such-id"])


def frame_rate_model(kind: str):
    """An untrained tiny VAE with a small frame-rate decoder ("istft" or "harmonic")."""
    import jax
    import jax.numpy as jnp

    from speechvae_jax.engine.checkpoint import params_hash
    from speechvae_jax.inference import InferenceModel
    from speechvae_jax.models.vae import SpeechVAE
    from speechvae_jax.presets.run import vae_config

    config = vae_config("tiny", "none")
    config.model.decoder.kind = kind
    config.model.decoder.istft.update(dim=32, intermediate=64, num_blocks=2)
    params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), jnp.zeros((1, 800)))["params"]
    return InferenceModel(config=config, params=params, step=0, checkpoint_hash=params_hash(params))


def test_istft_decoder_decodes_canonically_in_windows():
    """The iSTFT decoder is local: its measured receptive field lets long latents be decoded in
    overlapping windows exactly as in one call (the canonical decoding of export.codec)."""
    model = frame_rate_model("istft")
    left, right = codec.decoder_context(model)
    # embed conv(7): 3 latent frames; upsample x2 (kernel 4) and 2 depthwise conv(7) blocks at 80 Hz:
    # 1 + 2 * 3 STFT frames; the 800-sample window reaches 2 STFT frames more. In latent frames: 3 + 5 = 8.
    assert 0 < left <= 8 and 0 < right <= 8
    rng = np.random.default_rng(0)
    latents = [rng.normal(size=(t, 64)).astype(np.float32) for t in (30, 150)]
    got = codec.decode_utterances(model, latents, (left, right), codec.Buckets(frames=(64,), frames_per_batch=128))
    for z, audio in zip(latents, got):
        padded = np.pad(z, ((0, right + 5), (0, 0)))[None]
        want = np.asarray(model.decode(padded))[0, :len(z) * model.hop]
        assert audio.shape == want.shape
        np.testing.assert_allclose(audio, want, atol=2e-5)


def test_harmonic_decoder_is_canonical_within_one_piece():
    """The harmonic decoder's gradient support is local (f0 reaches the excitation through a
    stop-gradient), so its receptive field measures; an utterance decoded in one piece is the same in
    any bucket. Longer ones restart the excitation's running phase at each piece (docs/models.md)."""
    model = frame_rate_model("harmonic")
    left, right = codec.decoder_context(model)
    assert 0 < left <= 8 and 0 < right <= 8
    rng = np.random.default_rng(0)
    latents = [rng.normal(size=(t, 64)).astype(np.float32) for t in (30, 41, 150)]
    small = codec.decode_utterances(model, latents, (left, right), codec.Buckets(frames=(64,), frames_per_batch=128))
    large = codec.decode_utterances(model, latents, (left, right), codec.Buckets(frames=(256,), frames_per_batch=512))
    for z, a, b in zip(latents, small, large):
        assert a.shape == b.shape == (len(z) * model.hop,) and np.all(np.isfinite(a))
    for a, b in zip(small[:2], large[:2]):
        # not to 2e-5 as the iSTFT decoder: programs compiled for other batch shapes round the running
        # phase differently, and harmonic k multiplies a phase error by k (measured: at most 1.1e-3 at
        # a glottal-pulse peak, 1 of 16400 samples above 1e-3; peak amplitude 0.7)
        np.testing.assert_allclose(a, b, atol=2e-3)
