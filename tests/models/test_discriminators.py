import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.models import discriminators as D
from speechvae_jax.presets.model import discriminator_config


def _count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.slow
def test_each_discriminator_output_structure_and_gradients():
    cfg = discriminator_config("tiny")
    cfg.stft.enabled = True
    cfg.stft.fft_sizes = (256, 128)
    disc = D.Discriminators(cfg)
    audio = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2000)) * 0.1, jnp.float32)
    params = jax.jit(disc.init)(jax.random.key(0), audio)

    def score(p, a):
        outs = disc.apply(p, a)
        return sum(jnp.mean(logits) for logits, _ in outs), outs

    (_, outs), (gp, ga) = jax.jit(jax.value_and_grad(score, argnums=(0, 1), has_aux=True))(params, audio)
    assert len(outs) == 5 + 3 + 2
    assert sorted(params["params"]) == sorted([f"mpd_{p}" for p in (2, 3, 5, 7, 11)]
                                              + ["cqt_0", "cqt_1", "cqt_2", "stft_256", "stft_128"])
    for logits, fmaps in outs:
        assert logits.dtype == jnp.float32 and logits.shape[0] == 2
        assert np.all(np.isfinite(logits)) and len(fmaps) in (5, 6)
        assert all(f.shape[0] == 2 for f in fmaps)
    assert outs[0][1][0].shape == (2, 334, 2, 8)  # period 2: 1000 rows, stride 3
    assert outs[5][0].shape[2] == 8 * 24 // 2 ** 3  # CQT: 8 octaves x 24 bins, halved three times
    assert float(jnp.abs(ga).sum()) > 0
    for name, sub in gp["params"].items():
        assert float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(sub))) > 0, name
    cfg.mpd.enabled = cfg.cqt.enabled = cfg.stft.enabled = False
    with pytest.raises(ValueError, match="no sub-discriminator"):
        D.Discriminators(cfg).init(jax.random.key(0), audio)


def test_paper_discriminator_parameter_counts():
    disc = D.Discriminators(discriminator_config("paper"))
    params = jax.eval_shape(disc.init, jax.random.key(0), jnp.zeros((1, 4096)))["params"]
    mpd = sum(_count(v) for k, v in params.items() if k.startswith("mpd"))
    cqt = sum(_count(v) for k, v in params.items() if k.startswith("cqt"))
    assert mpd == 41_105_770  # the bigvgan package's MPD and CQT discriminator (tests/parity)
    assert cqt == 286_038
