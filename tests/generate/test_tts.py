"""The infilling objective and the guided sampler over the DiT."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.generate import tts
from speechvae_jax.generate.config import tts_config
from tests.generate.conftest import perturbed

FLOW = tts_config("tiny").flow


def test_span_mask_is_one_contiguous_span_of_70_to_100_percent():
    lengths = jnp.asarray(np.random.default_rng(0).integers(1, 101, size=4000))
    spans = np.asarray(tts.span_mask(jax.random.key(0), lengths, 100))
    lengths = np.asarray(lengths)
    count = spans.sum(1)
    starts, ends = spans.argmax(1), 100 - spans[:, ::-1].argmax(1)
    assert np.all(count == ends - starts)                              # contiguous
    assert np.all(ends <= lengths) and np.all(count >= 1)              # inside the utterance
    assert np.all(count >= np.floor(0.7 * lengths)) and np.all(count <= lengths)
    long = lengths == 100
    assert abs(count[long].mean() / 100 - 0.85) < 0.03
    assert np.mean(starts[lengths > 50] == 0) < 0.5 and np.mean(ends[lengths > 50] == lengths[lengths > 50]) < 0.5


def test_drop_flags_rates():
    audio, text = map(np.asarray, tts.drop_flags(jax.random.key(1), 100_000, 0.3, 0.2))
    assert np.all(audio[text])                                         # text only with the prompt
    assert abs(text.mean() - 0.2) < 0.005
    assert abs(audio.mean() - (0.2 + 0.8 * 0.3)) < 0.005


class _Probe:
    """Stands in for the DiT: predicts params["p"] [B,T,L] and records what it is given."""

    def __init__(self):
        self.calls = []

    def apply(self, variables, x_t, cond, tokens, t, mask, drop_audio, drop_text):
        self.calls.append(dict(x_t=x_t, cond=cond, t=t))
        return variables["params"]["p"]


def _batch(b=3, t=40, latent=8):
    lengths = jnp.array([40, 25, 10])[:b]
    return {"latent": jax.random.normal(jax.random.key(3), (b, t, latent)),
            "mask": jnp.arange(t)[None] < lengths[:, None], "tokens": jnp.ones((b, t), jnp.int32)}


def test_loss_counts_only_the_masked_span():
    batch, probe = _batch(), _Probe()
    params = {"p": jax.random.normal(jax.random.key(4), batch["latent"].shape)}
    loss, aux = tts.loss_fn(probe, params, batch, jax.random.key(5), FLOW)
    call = probe.calls[0]
    x1, mask = np.asarray(batch["latent"]), np.asarray(batch["mask"])
    cond = np.asarray(call["cond"])
    span = np.all(cond == 0, axis=-1) & mask
    # The prompt is the unmasked part of the utterance; the span and the padding are hidden.
    np.testing.assert_array_equal(cond[mask & ~span], x1[mask & ~span])
    assert np.all(cond[~mask] == 0)
    share = span.sum(1) / mask.sum(1)
    assert np.all(share >= 0.7 - 1 / 10) and np.all(share <= 1.0)
    assert float(aux["span_frac"]) == pytest.approx(span.sum() / mask.sum())
    # Loss: the velocity target x1 - x0 on the span frames only (x0 recovered from x_t and t).
    t = np.asarray(call["t"])[:, None, None]
    x0 = (np.asarray(call["x_t"]) - t * x1) / (1 - t)
    err = np.mean((np.asarray(params["p"]) - (x1 - x0)) ** 2, axis=-1)
    assert float(loss) == pytest.approx(err[span].mean(), rel=1e-4)
    grads = jax.grad(lambda p: tts.loss_fn(_Probe(), p, batch, jax.random.key(5), FLOW)[0])(params)["p"]
    np.testing.assert_array_equal(np.any(np.asarray(grads) != 0, axis=-1), span)


def test_cfg_scale_one_is_the_conditional_prediction(small):
    model, apply, params, inp = small
    params = perturbed(params)
    args = (inp["cond"], inp["tokens"], inp["mask"])
    t = jnp.float32(0.4)
    cond_v = apply({"params": params}, inp["x"], *args[:2], jnp.full(2, t), inp["mask"], inp["drop_audio"],
                   inp["drop_text"])
    null_v = apply({"params": params}, inp["x"], *args[:2], jnp.full(2, t), inp["mask"], jnp.ones(2, bool),
                   jnp.ones(2, bool))
    guided = jax.jit(lambda s: tts.guided_velocity(model, params, *args, s)(inp["x"], t))
    np.testing.assert_allclose(guided(1.0), cond_v, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(guided(0.0), null_v, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(guided(3.0), null_v + 3 * (cond_v - null_v), rtol=1e-4, atol=1e-4)
    assert not np.allclose(cond_v, null_v)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_sampling_is_deterministic_and_keeps_the_prompt(small, method):
    model, _, params, inp = small
    params = perturbed(params)
    sampler = tts.make_sampler(model, ConfigDict(dict(nfe=4, method=method, sway=-1.0)))
    prompt = jnp.arange(12)[None] < jnp.array([[3], [5]])
    args = (inp["cond"], prompt, inp["tokens"], inp["mask"], 2.0)
    a = np.asarray(sampler(params, jax.random.key(0), *args))
    b = np.asarray(sampler(params, jax.random.key(0), *args))
    c = np.asarray(sampler(params, jax.random.key(1), *args))
    assert a.shape == (2, 12, 8) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[~np.asarray(prompt) & np.asarray(inp["mask"])],
                           c[~np.asarray(prompt) & np.asarray(inp["mask"])])
    np.testing.assert_array_equal(a[np.asarray(prompt)], np.asarray(inp["cond"])[np.asarray(prompt)])
    assert np.all(a[~np.asarray(inp["mask"])] == 0)


def test_gradients_reach_every_parameter(small):
    model, _, params, _ = small
    batch = _batch(latent=8)
    batch["tokens"] = jax.random.randint(jax.random.key(6), batch["mask"].shape, 0, 12)
    grad = jax.jit(jax.grad(lambda p: tts.loss_fn(model, p, batch, jax.random.key(7), FLOW)[0]))
    # At initialisation the gates are zero: the output layer and the modulations learn first.
    g0 = grad(params)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g0))
    assert np.any(g0["output"]["kernel"] != 0) and np.any(g0["DiTBlock_0"]["modulation"]["kernel"] != 0)
    # Once the gates are open every parameter receives a gradient.
    g1 = grad(perturbed(params))
    dead = [jax.tree_util.keystr(k) for k, x in jax.tree_util.tree_flatten_with_path(g1)[0] if not np.any(x != 0)]
    assert not dead, dead
