import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.models.layers import (
    Conv,
    Snake,
    SnakeBeta,
    SubPixelUpsample,
    TransposedUpsample,
    conv1d,
    conv1d_im2col,
    prefer_im2col,
    snake,
    weight_norm,
)


def _torch_conv_transpose(x, w, b, stride, padding):
    """PyTorch ConvTranspose1d semantics: y[i*s + k - p] += x[i] @ w[k]; x [T, Ci], w [K, Ci, Co]."""
    t, k = x.shape[0], w.shape[0]
    full = np.zeros(((t - 1) * stride + k, w.shape[2]))
    for i in range(t):
        for kk in range(k):
            full[i * stride + kk] += x[i] @ w[kk]
    return full[padding:] + b


@pytest.mark.parametrize("stride", [4, 5])
def test_subpixel_equals_transposed_convolution(stride):
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    mod = SubPixelUpsample(4, stride, 2 * stride)
    params = mod.init(jax.random.key(1), x)
    params = jax.tree.map(lambda a: a + 0.1, params)  # non-zero bias too
    out = np.asarray(mod.apply(params, x))
    assert out.shape == (2, 6 * stride, 4)
    w, b = np.asarray(params["params"]["kernel"]), np.asarray(params["params"]["bias"])
    assert w.shape == (2 * stride, 3, 4)
    for n in range(2):
        ref = _torch_conv_transpose(x[n], w, b, stride, (2 * stride - stride) // 2)[: 6 * stride]
        np.testing.assert_allclose(out[n], ref, atol=1e-5)


def test_subpixel_rejects_other_kernels_and_transposed_alternative_shapes():
    with pytest.raises(ValueError, match="kernel_size == 2 \\* stride"):
        SubPixelUpsample(4, 4, 7).init(jax.random.key(0), jnp.zeros((1, 3, 2)))
    mod = TransposedUpsample(4, 5, 10)
    params = mod.init(jax.random.key(0), jnp.zeros((1, 3, 2)))
    assert params["params"]["conv"]["kernel"].shape == (10, 2, 4)
    assert mod.apply(params, jnp.ones((1, 3, 2))).shape == (1, 15, 4)


def test_snake_and_snakebeta_values():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(1, 4, 3)
    snake = Snake()
    p = {"params": {"alpha": jnp.array([0.5, 1.0, 2.0])}}
    a = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(snake.apply(p, x), x + np.sin(a * x) ** 2 / a, rtol=1e-5, atol=1e-6)
    sb = SnakeBeta()
    la, lb = np.array([0.0, 0.3, -0.2]), np.array([0.1, 0.0, 0.5])
    p = {"params": {"log_alpha": jnp.asarray(la), "log_beta": jnp.asarray(lb)}}
    ref = x + np.sin(np.exp(la) * x) ** 2 / np.exp(lb)
    np.testing.assert_allclose(sb.apply(p, x), ref, rtol=1e-5, atol=1e-6)
    init = SnakeBeta().init(jax.random.key(0), x)["params"]
    assert float(jnp.abs(init["log_alpha"]).sum() + jnp.abs(init["log_beta"]).sum()) == 0.0


@pytest.mark.parametrize("stride", [4, 5])
def test_subpixel_full_length_keeps_the_transposed_convolutions_last_output(stride):
    x = np.random.default_rng(0).normal(size=(1, 6, 3)).astype(np.float32)
    mod = SubPixelUpsample(4, stride, 2 * stride, full_length=True)
    params = jax.tree.map(lambda a: a + 0.1, mod.init(jax.random.key(1), x))
    out = np.asarray(mod.apply(params, x))
    assert out.shape == (1, 6 * stride + stride % 2, 4)
    w, b = np.asarray(params["params"]["kernel"]), np.asarray(params["params"]["bias"])
    full = _torch_conv_transpose(x[0], w, b, stride, stride // 2)
    np.testing.assert_allclose(out[0], full[: 6 * stride + stride % 2], atol=1e-5)


def test_weight_norm_starts_at_the_kernel_and_scales_with_the_gain():
    x = np.random.default_rng(0).normal(size=(2, 9, 3)).astype(np.float32)
    wn, plain = conv1d(5, 3, weight_norm=True), conv1d(5, 3)
    p = wn.init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(p["gain"], np.linalg.norm(np.asarray(p["kernel"]).reshape(-1, 5), axis=0), rtol=1e-6)
    same = plain.apply({"params": {"kernel": p["kernel"], "bias": p["bias"]}}, x)
    np.testing.assert_allclose(wn.apply({"params": p}, x), same, atol=1e-5)
    doubled = wn.apply({"params": {**p, "gain": 2 * p["gain"]}}, x)
    np.testing.assert_allclose(doubled, 2 * same, atol=1e-5)
    w = np.asarray(weight_norm(jnp.ones((2, 3, 4)), jnp.arange(3.0), axis=1))  # gain per axis-1 index
    np.testing.assert_allclose(np.linalg.norm(w.transpose(1, 0, 2).reshape(3, -1), axis=1), [0, 1, 2], atol=1e-6)


def test_anti_aliased_snakebeta_keeps_parameters_and_length():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 16, 2)), jnp.float32)
    plain, aa = SnakeBeta(), SnakeBeta(anti_alias=True)
    p = plain.init(jax.random.key(0), x)
    assert jax.tree.structure(p) == jax.tree.structure(aa.init(jax.random.key(0), x))
    y = np.asarray(aa.apply(p, x))
    assert y.shape == x.shape and not np.allclose(y, plain.apply(p, x), atol=1e-3)


def test_snake_vjp_equals_autodiff_of_the_formula():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 7, 3)) * 3, jnp.float32)
    alpha = jnp.asarray([0.5, 1.0, 2.3], jnp.float32)
    inv_beta = jnp.asarray([1.7, 0.4, 1.0], jnp.float32)
    g = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    formula = lambda x, a, b: x + b * jnp.sin(a * x) ** 2  # noqa: E731
    y, vjp = jax.vjp(snake, x, alpha, inv_beta)
    y_ref, vjp_ref = jax.vjp(formula, x, alpha, inv_beta)
    np.testing.assert_allclose(y, y_ref, atol=1e-6)
    for got, ref in zip(vjp(g), vjp_ref(g)):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_snake_under_bfloat16_keeps_the_dtypes_and_sums_in_float32():
    x = jnp.linspace(-2, 2, 12, dtype=jnp.bfloat16).reshape(1, 4, 3)
    alpha = jnp.ones(3, jnp.bfloat16)
    y, vjp = jax.vjp(snake, x, alpha, alpha)
    assert y.dtype == jnp.bfloat16
    g_x, g_alpha, _ = vjp(jnp.ones_like(y))
    assert g_x.dtype == jnp.bfloat16 and g_alpha.dtype == jnp.bfloat16
    xf = np.asarray(x, np.float32)
    np.testing.assert_allclose(np.asarray(g_alpha, np.float32),
                               np.sum(xf * np.sin(2 * xf), axis=(0, 1)), rtol=1e-2)


def test_a_k_by_1_conv2d_equals_the_general_2d_convolution():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 17, 3, 4)), jnp.float32)
    mod = Conv(6, (5, 1), (3, 1), padding=[(2, 2), (0, 0)], weight_norm=True)
    params = mod.init(jax.random.key(0), x)
    ref = jax.lax.conv_general_dilated(x, weight_norm(params["params"]["kernel"], params["params"]["gain"], -1),
                                       (3, 1), [(2, 2), (0, 0)], dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(mod.apply(params, x), ref + params["params"]["bias"], atol=1e-5)


@pytest.mark.parametrize("k,stride,dilation,padding", [(8, 4, 1, (2, 2)), (10, 5, 1, (3, 3)), (7, 1, 3, (9, 9)),
                                                       (3, 1, 1, (1, 1)), (5, 3, 1, (2, 0)), (4, 2, 2, (0, 5))])
def test_im2col_conv_equals_xla_convolution_with_its_gradients(k, stride, dilation, padding):
    rng = np.random.default_rng(k + stride)
    x = jnp.asarray(rng.normal(size=(2, 37, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, 6, 5)), jnp.float32)

    def lax_conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride,), [padding], rhs_dilation=(dilation,),
                                            dimension_numbers=("NWC", "WIO", "NWC"))

    def im2col(x, w):
        return conv1d_im2col(x, w, stride, dilation, padding)

    np.testing.assert_allclose(im2col(x, w), lax_conv(x, w), rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    for a, b in zip(jax.grad(loss(im2col), (0, 1))(x, w), jax.grad(loss(lax_conv), (0, 1))(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_im2col_is_chosen_for_strided_and_wide_short_convolutions_on_cpu():
    assert jax.default_backend() == "cpu"
    assert prefer_im2col(8192, 128, 8, 4)        # DAC encoder downsampling
    assert prefer_im2col(82, 2048, 3, 1)         # the encoder's final conv at the latent rate
    assert not prefer_im2col(32768, 128, 7, 1)   # long and narrow: XLA's convolution
    assert not prefer_im2col(410, 768, 3, 1)     # few taps (the decoder's k3 at 410 frames)
    assert not prefer_im2col(82, 2048, 1, 1)     # 1x1: a matmul either way
    mod = Conv(16, (3,), padding=[(1, 1)])
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 20, 2048)), jnp.float32)
    params = mod.init(jax.random.key(0), x)
    ref = jax.lax.conv_general_dilated(x, params["params"]["kernel"], (1,), [(1, 1)],
                                       dimension_numbers=("NWC", "WIO", "NWC"))
    np.testing.assert_allclose(mod.apply(params, x), ref + params["params"]["bias"], rtol=1e-5, atol=1e-5)
