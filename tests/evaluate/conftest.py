"""Real speech for the evaluation tests: short flite sentences, synthesised once per session."""
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

SENTENCES = {
    "kal_a": ("kal16", "Please call me tomorrow morning at nine."),
    "kal_b": ("kal16", "The weather is nice today and the sun is shining."),
    "slt_a": ("slt", "Please call me tomorrow morning at nine."),
    "slt_b": ("slt", "The weather is nice today and the sun is shining."),
}


@pytest.fixture(scope="session")
def flite_speech(tmp_path_factory):
    """{name: (audio float32 [N] at 16 kHz, text)} for the SENTENCES."""
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed (apt-get install flite)")
    out = tmp_path_factory.mktemp("flite")
    speech = {}
    for name, (voice, text) in SENTENCES.items():
        path = out / f"{name}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 16000, (voice, sr)
        speech[name] = (audio, text)
    return speech


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """audio plus white noise at the given SNR (dB)."""
    noise = np.random.default_rng(seed).normal(size=audio.shape)
    noise *= np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory, tiny_corpus):
    """A run directory (config.json + one Orbax checkpoint, step 0) of the tiny VAE with freshly
    initialised weights, and a small random-weight HuBERT-layout teacher beside it, for the
    report's plumbing: real networks, real audio, untrained."""
    import json

    import jax

    from speechvae_jax.engine import checkpoint
    from speechvae_jax.models.vae import SpeechVAE
    from speechvae_jax.presets.run import vae_config
    from speechvae_jax.teachers import EncoderConfig
    from speechvae_jax.teachers.encoder import SSLEncoder
    from speechvae_jax.teachers.store import save_teacher

    workdir = str(tmp_path_factory.mktemp("untrained_run"))
    teacher_cfg = EncoderConfig(kind="hubert", conv_dim=(8, 8, 8, 8, 8, 16, 16), conv_bias=True,
                                feat_extract_norm="layer", hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=24, num_conv_pos_embeddings=8,
                                num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, do_normalize=True)
    teacher_params = jax.jit(SSLEncoder(teacher_cfg).init)(jax.random.PRNGKey(1),
                                                           np.zeros((1, 1000), np.float32))["params"]
    save_teacher(f"{workdir}/teacher", teacher_cfg, teacher_params, default_layer=1)
    config = vae_config("tiny", "none")
    config.data.source = tiny_corpus
    config.teacher.path = f"{workdir}/teacher"
    config.teacher.layer = 1
    params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), np.zeros((1, 4000), np.float32))["params"]
    with open(f"{workdir}/config.json", "w") as f:
        json.dump(config.to_dict(), f)
    checkpoint.write_checkpoint(workdir, 0, {"ema": {"vae": params}})
    return workdir
