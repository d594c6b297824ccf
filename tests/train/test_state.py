import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.train.state import ema_decay_at, ema_update


def test_release_ema_schedule_is_ema_pytorch_warmup():
    # ema-pytorch EMA(beta=0.9999, power=3/4, update_every=1, update_after_step=1): copies on the
    # first two updates, then decay 1 - (1 + epoch) ** -0.75 with epoch = step - 1, capped at beta.
    d = [float(ema_decay_at(s, 0.9999, "release")) for s in (0, 1, 2, 3, 10_000, 10**9)]
    assert d[:2] == [0.0, 0.0]
    assert d[2] == pytest.approx(1 - 2 ** -0.75, rel=1e-6) and d[3] == pytest.approx(1 - 3 ** -0.75, rel=1e-6)
    assert d[4] == pytest.approx(1 - 10_000 ** -0.75, rel=1e-5) and d[5] == pytest.approx(0.9999, rel=1e-7)
    assert float(ema_decay_at(0, 0.9999)) == pytest.approx(0.1)  # the default "warmup10" schedule
    with pytest.raises(ValueError, match="ema_schedule"):
        ema_decay_at(0, 0.9999, "cosine")


def test_ema_update_mixes_with_the_scheduled_decay():
    ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    np.testing.assert_allclose(ema_update(ema, params, 0.9999, 1, "release")["w"], 1.0)   # copy
    np.testing.assert_allclose(ema_update(ema, params, 0.9999, 2, "release")["w"], 2 ** -0.75, rtol=1e-6)
