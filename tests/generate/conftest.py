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
