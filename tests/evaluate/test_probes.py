"""Probes: learn separable toy tasks, stay at chance on shuffled labels, ignore padded frames."""
import numpy as np
import pytest

from speechvae_jax.evaluate import probes


def _clusters(n, num_classes=4, dim=16, seed=0, spread=0.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(num_classes, dim)) * 2.0
    y = rng.integers(0, num_classes, n)
    return (centres[y] + spread * rng.normal(size=(n, dim))).astype(np.float32), y


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_frame_probe_learns_separable_clusters(head):
    x, y = _clusters(1200)
    xt, yt = _clusters(600, seed=1)
    out = probes.train_frame_probe(x, y, xt, yt, num_classes=4, head=head, steps=300, batch_size=128,
                                   lr=3e-3)
    assert out["accuracy"] > 0.97 and out["train_accuracy"] > 0.97
    assert out["num_train"] == 1200 and out["num_test"] == 600


def test_frame_probe_stays_at_chance_on_shuffled_labels():
    x, y = _clusters(1200)
    xt, yt = _clusters(2000, seed=1)
    shuffled = np.random.default_rng(5).permutation(y)
    out = probes.train_frame_probe(x, shuffled, xt, yt, num_classes=4, head="mlp", steps=300,
                                   batch_size=128, lr=3e-3)
    assert abs(out["accuracy"] - 0.25) < 0.06


def test_mlp_head_solves_xor_that_linear_cannot():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2000, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    kw = dict(num_classes=2, steps=600, batch_size=128, lr=1e-2)
    lin = probes.train_frame_probe(x[:1500], y[:1500], x[1500:], y[1500:], head="linear", **kw)
    mlp = probes.train_frame_probe(x[:1500], y[:1500], x[1500:], y[1500:], head="mlp", hidden=32, **kw)
    assert lin["accuracy"] < 0.7 < 0.9 < mlp["accuracy"]


def test_mean_pool_and_valid_frames_reference():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    np.testing.assert_allclose(probes.mean_pool(x, mask), [[1.0, 2.0], [6.0, 7.0]])
    fx, fy = probes.valid_frames(x, mask, np.array([[4, 5, 6], [7, 8, 9]]))
    np.testing.assert_array_equal(fy, [4, 5, 7])
    np.testing.assert_array_equal(fx, [[0, 1], [2, 3], [6, 7]])
    with pytest.raises(ValueError, match="no valid frames"):
        probes.mean_pool(x, np.array([[1, 0, 0], [0, 0, 0]]))


def test_pooled_utterances_ignore_padded_frames():
    rng = np.random.default_rng(0)
    v, y = _clusters(200, num_classes=3, dim=8)
    lengths = rng.integers(2, 10, 200)
    mask = (np.arange(10)[None] < lengths[:, None]).astype(np.float32)
    x = v[:, None, :] + 0.3 * rng.normal(size=(200, 10, 8)).astype(np.float32)
    garbage = np.where(mask[..., None] > 0, x, 1e3 * rng.normal(size=x.shape)).astype(np.float32)
    clean = np.where(mask[..., None] > 0, x, 0.0).astype(np.float32)
    kw = dict(num_classes=3, steps=200, batch_size=32, lr=3e-3)
    a, b = (probes.train_frame_probe(p[:150], y[:150], p[150:], y[150:], **kw)
            for p in (probes.mean_pool(clean, mask), probes.mean_pool(garbage, mask)))
    assert a == b and a["accuracy"] > 0.95


def test_edit_distance_and_greedy_decode_reference():
    assert probes.edit_distance("kitten", "sitting") == 3
    assert probes.edit_distance([], [1, 2]) == 2
    assert probes.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    best = np.array([[0, 3, 3, 0, 3, 2, 2, 1], [1, 1, 0, 1, 5, 5, 5, 5]])
    mask = np.array([[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]])
    assert probes.ctc_greedy_decode(best, mask) == [[3, 3, 2, 1], [1, 1]]


def _toy_sequences(n, num_tokens=5, dim=12, seed=0, max_frames=40):
    """Each token emits 2 to 4 frames of its own embedding plus noise; a silence frame between.
    (x [n,max_frames,dim], mask [n,max_frames], labels): padded, with garbage past the mask."""
    rng = np.random.default_rng(seed)
    emb = np.random.default_rng(99).normal(size=(num_tokens + 1, dim)) * 2.0
    x = np.zeros((n, max_frames, dim), np.float32)
    mask = np.zeros((n, max_frames), np.float32)
    labels = []
    for b in range(n):
        seq, frames = [], []
        while True:
            tok = int(rng.integers(num_tokens))
            seg = [tok + 1] * int(rng.integers(2, 5)) + [0]
            if len(frames) + len(seg) > max_frames:
                break
            seq.append(tok)
            frames += seg
        x[b, :len(frames)] = emb[frames] + 0.3 * rng.normal(size=(len(frames), dim))
        x[b, len(frames):] = 50.0  # padding garbage that must not matter
        mask[b, :len(frames)] = 1
        labels.append(seq)
    return x, mask, labels


def test_ctc_probe_decodes_toy_sequences():
    x, m, lab = _toy_sequences(120)
    xt, mt, lt = _toy_sequences(40, seed=1)
    out = probes.train_ctc_probe(list(x), list(m), lab, list(xt), list(mt), lt, num_tokens=5, head="linear",
                                 context=1, steps=300, batch_size=16, lr=1e-2)
    assert out["error_rate"] < 0.1, out
    assert out["num_train"] == 120 and out["skipped_train"] == 0
    # ragged: each utterance cut to its valid frames (no padding at all) trains and scores the same
    cut = lambda xs, ms: ([a[b > 0] for a, b in zip(xs, ms)], [b[b > 0] for b in ms])
    rx, rm = cut(x, m)
    rxt, rmt = cut(xt, mt)
    ragged = probes.train_ctc_probe(rx, rm, lab, rxt, rmt, lt, num_tokens=5, head="linear", context=1,
                                    steps=300, batch_size=16, lr=1e-2)
    assert abs(ragged["error_rate"] - out["error_rate"]) <= 0.02 and ragged["num_train"] == 120, (ragged, out)


def test_length_batches_bound_the_padding():
    groups = probes.length_batches([5, 100, 3, 7, 2000, 4], frame_budget=20)
    assert [g.tolist() for g in groups] == [[2, 5, 0], [3], [1], [4]]


def test_ctc_probe_caps_training_length_and_scores_every_test_utterance():
    x, m, lab = _toy_sequences(30)
    xs, ms = list(x), list(m)
    long_x = np.concatenate([x[0]] * 50)            # one 2000-frame recording among 40-frame ones
    long_m = np.concatenate([m[0]] * 50)
    out = probes.train_ctc_probe(xs + [long_x], ms + [long_m], lab + [lab[0] * 50], xs[:5] + [long_x],
                                 ms[:5] + [long_m], lab[:5] + [lab[0] * 50], num_tokens=5, steps=5,
                                 max_train_frames=100)
    assert out["skipped_train_too_long"] == 1 and out["num_train"] == 30 and out["num_test"] == 6
    with pytest.raises(ValueError, match="max_train_frames=10"):
        probes.train_ctc_probe(xs, ms, lab, xs, ms, lab, num_tokens=5, steps=5, max_train_frames=10)


def test_ctc_probe_skips_unfittable_and_rejects_bad_ids():
    x, m, lab = _toy_sequences(20)
    lab = list(lab)
    lab[0] = [1] * 50  # cannot fit 40 frames
    out = probes.train_ctc_probe(list(x), list(m), lab, list(x), list(m), lab, num_tokens=5, steps=5)
    assert out["skipped_train"] == 1 and out["num_train"] == 19
    with pytest.raises(ValueError, match="train_labels"):
        probes.train_ctc_probe(list(x), list(m), [[7]] * 20, list(x), list(m), lab, num_tokens=5, steps=5)
    with pytest.raises(ValueError, match=r"train\[3\]: features"):
        probes.train_ctc_probe(list(x), list(m[:3]) + [m[3, :5]] + list(m[4:]), lab, list(x), list(m), lab,
                               num_tokens=5, steps=5)


def test_bad_inputs_are_named():
    x, y = _clusters(50)
    with pytest.raises(ValueError, match="train_y"):
        probes.train_frame_probe(x, y + 10, x, y, num_classes=4, steps=2)
    with pytest.raises(ValueError, match="unknown probe head"):
        probes.train_frame_probe(x, y, x, y, num_classes=4, head="lstm", steps=2)
    with pytest.raises(ValueError, match=r"\[M,D\]"):
        probes.train_frame_probe(x[:, None], y, x, y, num_classes=4, steps=2)


def test_over_seeds_mean_and_spread():
    x, y = _clusters(300)
    res = probes.over_seeds(probes.train_frame_probe, seeds=(0, 1, 2), train_x=x, train_y=y,
                            test_x=x, test_y=y, num_classes=4, steps=20, batch_size=32)
    accs = [r["accuracy"] for r in res["runs"]]
    assert res["seeds"] == [0, 1, 2]
    np.testing.assert_allclose(res["mean"]["accuracy"], np.mean(accs))
    np.testing.assert_allclose(res["std"]["accuracy"], np.std(accs))


def _layered(x, informative, num_layers=4, seed=3):
    """x [M,D] hidden in layer `informative` of [M,K,D]; the other layers are noise."""
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(len(x), num_layers, x.shape[-1])).astype(np.float32) * 2.0
    out[:, informative] = x
    return out


def test_layered_frame_probe_learns_the_informative_layer():
    x, y = _clusters(1200, spread=1.0)
    xt, yt = _clusters(600, seed=1, spread=1.0)
    out = probes.train_frame_probe(_layered(x, 2), y, _layered(xt, 2, seed=4), yt, num_classes=4,
                                   head="linear", steps=400, batch_size=128, lr=1e-2, layered=True)
    weights = out["layer_weights"]
    assert len(weights) == 4 and abs(sum(weights) - 1) < 1e-5
    assert int(np.argmax(weights)) == 2 and weights[2] > 0.5, weights
    assert out["accuracy"] > 0.9
    with pytest.raises(ValueError, match=r"\[M,K,D\] \(layered\)"):
        probes.train_frame_probe(x, y, xt, yt, num_classes=4, steps=2, layered=True)


def test_mix_layers_and_layered_mean_pool_reference():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # [M=2, K=3, D=2]
    params = {"mix": np.log(np.array([1.0, 0.0, 3.0]) + 1e-30).astype(np.float32)}
    np.testing.assert_allclose(probes.mix_layers(params, x), 0.25 * x[:, 0] + 0.75 * x[:, 2], rtol=1e-6)
    assert probes.mix_layers({}, x) is x
    frames = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)  # [B,T,K,D]
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    pooled = probes.mean_pool(frames, mask)
    np.testing.assert_allclose(pooled[0], frames[0, :2].mean(0))
    np.testing.assert_allclose(pooled[1], frames[1, 0])
    mu, sd = probes.standardizer(frames, mask, feature_ndim=2)
    assert mu.shape == sd.shape == (2, 2)
    np.testing.assert_allclose(mu, frames[[0, 0, 1], [0, 1, 0]].mean(0))


def test_stack_context_reference():
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 4, 1)
    mask = np.array([[1, 1, 1, 0]], np.float32)
    out = np.asarray(probes.stack_context(x, mask, 1))
    np.testing.assert_array_equal(out[0], [[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 0]])
    assert probes.stack_context(x, mask, 0) is x


def test_layered_ctc_probe_decodes_toy_sequences():
    x, m, labels = _toy_sequences(120)
    xt, mt, lt = _toy_sequences(40, seed=1)
    noise = np.random.default_rng(9).normal(size=x.shape).astype(np.float32)
    lx = np.stack([noise, x], axis=2)
    lxt = np.stack([np.random.default_rng(10).normal(size=xt.shape).astype(np.float32), xt], axis=2)
    out = probes.train_ctc_probe(list(lx), list(m), labels, list(lxt), list(mt), lt, num_tokens=5, head="linear",
                                 context=1,
                                 steps=300, batch_size=16, lr=1e-2, layered=True)
    assert out["error_rate"] < 0.15, out
    assert out["layer_weights"][1] > 0.5


def test_training_in_progress_chunks_equals_one_scan():
    """`_fit` runs the steps as several scans behind a progress bar; the result is one scan's."""
    import jax
    import jax.numpy as jnp

    x, y = _clusters(300)
    params = probes.init_head(jax.random.PRNGKey(0), 16, 4, "mlp", 32)
    idx = probes._epoch_indices(300, 57, 32, 0)   # 57 steps: chunks of 5 and 6 steps
    got, losses = probes._fit(probes._xent_loss, params, (x, y), idx, 3e-3, 1e-4)
    init, run = probes._trainer(probes._xent_loss, 3e-3, 1e-4)
    (want, _), want_losses = run((params, init(params)), (jnp.asarray(x), jnp.asarray(y)), jnp.asarray(idx))
    np.testing.assert_allclose(losses, want_losses, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
