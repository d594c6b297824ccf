"""Export fixtures: a tiny SpeechVAE with random weights (a real network; no trained run needed),
saved as a run directory the way the trainer lays it out, and a small real-speech source."""
import json
import os

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """InferenceModel of the tiny preset with random (seed 0) weights."""
    import jax
    import jax.numpy as jnp

    from speechvae_jax.engine.checkpoint import params_hash
    from speechvae_jax.inference import InferenceModel
    from speechvae_jax.models.vae import SpeechVAE
    from speechvae_jax.presets.run import vae_config

    config = vae_config("tiny", "none")
    params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), jnp.zeros((1, 800)))["params"]
    return InferenceModel(config=config, params=params, step=7, checkpoint_hash=params_hash(params))


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> str:
    """A run directory (config.json + Orbax checkpoint at step 7 with the EMA params) for the model."""
    import orbax.checkpoint as ocp

    from speechvae_jax.engine import checkpoint

    workdir = str(tmp_path_factory.mktemp("run"))
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(tiny_model.config.to_dict(), f)
    mngr = checkpoint.make_manager(workdir, keep=1)
    state = {"ema": {"vae": tiny_model.params}}
    mngr.save(tiny_model.step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                       meta=ocp.args.JsonSave({"step": tiny_model.step})),
              metrics={checkpoint.BEST_METRIC: 0.0})
    mngr.wait_until_finished()
    mngr.close()
    return workdir
