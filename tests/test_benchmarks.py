"""The benchmark scripts still run against the current train-step API (they print figures and are
not run by anything else, so an API change would otherwise break them unnoticed)."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.bench import components, peer


@pytest.mark.slow
def test_peer_jax_side_runs_on_the_tiny_preset():
    g_step, d_step, export, flops = peer.jax_steps(batch=1, crop=3200, size="tiny")
    audio = jnp.asarray(np.random.default_rng(0).normal(0, 0.1, (1, 3200)), jnp.float32)
    g_step(audio)
    d_step(audio)
    export(audio)
    assert flops(audio) > 1e6


@pytest.mark.slow
def test_train_step_benchmark_prints_its_figures():
    out = subprocess.run([sys.executable, "-m", "speechvae_jax.bench.train_step", "--size", "tiny",
                          "--batch", "1", "--crop", "3200", "--repeats", "1",
                          "--cases", "joint_marginal:generator"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "joint_marginal" in out.stdout and "peak RSS" in out.stdout


@pytest.mark.slow
def test_component_benchmark_jax_side_gives_finite_gradients_of_the_input_shape():
    parts = components.jax_components(batch=1, crop=3200, size="tiny")
    assert set(parts) == {"encoder", "decoder", "MPD (real + fake)", "sub-band CQT (real + fake)",
                          "MR-STFT loss (A-weighted)"}
    for name, (forward, backward, x) in parts.items():
        assert np.isfinite(float(forward(x))), name
        grad_params, grad_x = backward(x)
        assert grad_x.shape == x.shape, name
        assert np.isfinite(np.asarray(grad_x)).all() and float(jnp.abs(grad_x).sum()) > 0, name
        assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grad_params)), name
