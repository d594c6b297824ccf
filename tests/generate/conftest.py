"""A small DiT and inputs shared by the generate tests."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.generate.dit import DiT

SMALL = dict(latent_dim=8, num_tokens=12, width=32, depth=2, heads=2, text_width=16, text_layers=1,
             conv_pos_kernel=5, conv_pos_groups=4)


def dit_inputs(b=2, t=12, seed=0):
    """Keyword inputs of DiT.__call__: row 0 has t real frames, row 1 has t - 4."""
    k = jax.random.split(jax.random.key(seed), 3)
    mask = jnp.arange(t)[None] < jnp.array([t, t - 4])[:b, None]
    return dict(x=jax.random.normal(k[0], (b, t, 8)), cond=jax.random.normal(k[1], (b, t, 8)),
                tokens=jax.random.randint(k[2], (b, t), 0, 12), t=jnp.array([0.3, 0.8])[:b], mask=mask,
                drop_audio=jnp.zeros(b, bool), drop_text=jnp.zeros(b, bool))


def perturbed(params, seed=1, std=0.1):
    """Params with noise added everywhere (the zero-initialised gates and GRN open up)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: np.asarray(p) + std * rng.normal(size=p.shape).astype(np.float32), params)


@pytest.fixture(scope="module")
def small():
    """(model, jitted apply, initial params, inputs) of a small DiT."""
    model = DiT(**SMALL)
    inp = dit_inputs()
    params = jax.jit(model.init)(jax.random.key(0), **inp)["params"]
    return model, jax.jit(model.apply), params, inp


def synthetic_utterance(uid: str, speaker: str, seed: int) -> dict:
    """A standard utterance (0.6-1.2 s of harmonic tones) with phonemes "a".."e" and sample timings."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(9600, 19200))
    t = np.arange(n) / 16000
    audio = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * np.hanning(n)).astype(np.float32)
    phones = [str(p) for p in rng.choice(list("abcde"), size=int(rng.integers(3, 7)))]
    edges = np.linspace(800, n - 800, len(phones) + 1).astype(np.int32)
    return {"id": uid, "audio": audio, "text": " ".join(phones), "phonemes": " ".join(phones),
            "speaker": speaker, "phoneme_starts": edges[:-1], "phoneme_ends": edges[1:]}


@pytest.fixture(scope="session")
def tts_latents(tiny_model, tmp_path_factory) -> str:
    """An export root with `train` (16) and `valid` (8) exports of synthetic utterances of two
    speakers, encoded by the random-weight tiny VAE."""
    from speechvae_jax.export.writer import ExportOptions, export_model

    root = tmp_path_factory.mktemp("tts_latents")
    for split, count in (("train", 16), ("valid", 8)):
        records = [synthetic_utterance(f"{split}{i}", f"s{i % 2}", seed=100 * len(split) + i) for i in range(count)]
        export_model(tiny_model, records, str(root / split), source_spec="synthetic", split=split,
                     options=ExportOptions(shard_size=8))
    return str(root)
