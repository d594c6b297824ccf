"""Layer indexing, frozen-teacher gradients, original WavLM checkpoints, bad inputs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.teachers import EncoderConfig, build_teacher, load_teacher
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.teachers.store import save_teacher

CFG = EncoderConfig(kind="wavlm", conv_dim=(8, 16), conv_kernel=(10, 4), conv_stride=(5, 4),
                    hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24,
                    num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, num_buckets=16,
                    max_bucket_distance=40, do_stable_layer_norm=True, feat_extract_norm="layer")


def _teacher(cfg=CFG, seed=0):
    params = SSLEncoder(cfg).init(jax.random.PRNGKey(seed), jnp.zeros((1, 800)))["params"]
    return build_teacher(cfg, params, default_layer=2)


def test_geometry():
    assert CFG.hop == 20 and CFG.receptive_field == 25
    standard = EncoderConfig()
    assert standard.hop == 320 and standard.receptive_field == 400 and standard.frame_rate == 50
    assert standard.num_frames(32768) == 102 and standard.num_frames(399) == 0


@pytest.mark.parametrize("stable", [True, False])
def test_hidden_state_k_is_output_of_k_layers(stable):
    """hidden_states[k] of an L-layer model = last hidden state of the same model cut to k layers
    (what torchaudio's extract_features(num_layers=k)[-1] returns)."""
    import dataclasses
    cfg = dataclasses.replace(CFG, do_stable_layer_norm=stable)
    full = _teacher(cfg)
    audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 1234)), jnp.float32)
    hs = full.hidden_states(audio)
    assert len(hs) == cfg.num_hidden_layers + 1
    assert hs[0].shape == (2, cfg.num_frames(1234), cfg.hidden_size)
    for k in range(1, cfg.num_hidden_layers):
        cut_cfg = dataclasses.replace(cfg, num_hidden_layers=k)
        cut_params = {n: v for n, v in full.params.items() if not n.startswith("layers_")
                      or int(n.split("_")[1]) < k}
        cut = build_teacher(cut_cfg, cut_params, default_layer=k)
        np.testing.assert_allclose(np.asarray(cut.hidden_states(audio)[-1]), np.asarray(hs[k]), atol=1e-6)


def test_frozen_teacher_has_no_gradient():
    teacher = _teacher()
    audio = jnp.asarray(np.random.default_rng(1).standard_normal((2, 1000)), jnp.float32)
    student = {"w": jnp.ones((CFG.hidden_size,))}

    @jax.jit
    def loss(student, teacher_params):
        target = teacher.apply_fn(jax.lax.stop_gradient(teacher_params), audio, None)[2]
        return jnp.mean(jnp.square(target * student["w"] - 1.0))

    g_student, g_teacher = jax.grad(loss, argnums=(0, 1))(student, teacher.params)
    assert float(jnp.abs(g_student["w"]).sum()) > 0
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_teacher))
    # Without the stop-gradient the teacher would receive gradients: the check above can fail.
    g_open = jax.grad(lambda p: jnp.sum(teacher.apply_fn(p, audio, None)[2]))(teacher.params)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(g_open))


def test_save_load_round_trip_and_identity(tmp_path):
    teacher = _teacher()
    save_teacher(str(tmp_path / "t"), teacher.config, teacher.params, default_layer=2, meta={"note": "x"})
    loaded = load_teacher(str(tmp_path / "t"))
    assert loaded.identity == teacher.identity and loaded.default_layer == 2
    assert loaded.config == teacher.config and loaded.frame_rate == 16000 / 20
    audio = jnp.ones((1, 500)) * 0.1
    np.testing.assert_allclose(np.asarray(loaded.hidden_states(audio)[3]),
                               np.asarray(teacher.hidden_states(audio)[3]), atol=1e-6)
    assert _teacher(seed=1).identity != teacher.identity


def test_bad_inputs(tmp_path):
    teacher = _teacher()
    with pytest.raises(ValueError, match="shorter than its receptive field"):
        teacher.hidden_states(jnp.zeros((1, 10)))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        teacher.hidden_states(jnp.zeros((10,)))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_teacher(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a complete"):
        load_teacher(str(tmp_path))
    with pytest.raises(ValueError, match="unknown teacher encoder config keys"):
        EncoderConfig.from_dict({"kind": "wavlm", "bogus": 1})
    with pytest.raises(ValueError, match="kind"):
        EncoderConfig(kind="bert")


def test_original_wavlm_checkpoint(tmp_path):
    """An original-layout (microsoft/unilm) WavLM .pt converts to the same model as transformers'."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from speechvae_jax.teachers.convert import convert_checkpoint
    hf_cfg = transformers.WavLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=24, conv_dim=(8, 8, 8), conv_kernel=(10, 3, 3),
                                      conv_stride=(5, 2, 2), num_conv_pos_embeddings=8,
                                      num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
                                      do_stable_layer_norm=True, conv_bias=False)
    model = transformers.WavLMModel(hf_cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    # The original key names, written out independently of the converter's rename table.
    rename = {"feature_projection.layer_norm.": "layer_norm.", "feature_projection.projection.": "post_extract_proj.",
              "encoder.pos_conv_embed.conv.": "encoder.pos_conv.0.",
              ".attention.gru_rel_pos_linear.": ".self_attn.grep_linear.",
              ".attention.gru_rel_pos_const": ".self_attn.grep_a",
              ".attention.rel_attn_embed.": ".self_attn.relative_attention_bias.",
              ".attention.": ".self_attn.", ".feed_forward.intermediate_dense.": ".fc1.",
              ".feed_forward.output_dense.": ".fc2."}
    state = {}
    for key, value in model.state_dict().items():
        if key == "masked_spec_embed":
            key = "mask_emb"
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v")
        for a, b in rename.items():
            key = key.replace(a, b)
        for i in range(3):
            key = key.replace(f"conv_layers.{i}.conv.", f"conv_layers.{i}.0.").replace(
                f"conv_layers.{i}.layer_norm.", f"conv_layers.{i}.2.1.")
        if ".layers." in key and key.split(".")[3] == "layer_norm":
            key = key.replace(".layer_norm.", ".self_attn_layer_norm.")
        state[key] = value
    cfg = {"encoder_layers": 2, "encoder_embed_dim": 16, "encoder_ffn_embed_dim": 24, "encoder_attention_heads": 2,
           "conv_feature_layers": "[(8,10,5)] + [(8,3,2)] * 2", "extractor_mode": "layer_norm",
           "layer_norm_first": True, "conv_bias": False, "conv_pos": 8, "conv_pos_groups": 2,
           "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800, "gru_rel_pos": True,
           "normalize": False, "activation_fn": "gelu"}
    torch.save({"cfg": cfg, "model": state}, tmp_path / "WavLM-tiny.pt")
    convert_checkpoint(str(tmp_path / "WavLM-tiny.pt"), str(tmp_path / "ours"))
    teacher = load_teacher(str(tmp_path / "ours"))
    audio = np.random.default_rng(2).standard_normal((1, 2000)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(audio), output_hidden_states=True).hidden_states
    for a, b in zip(teacher.hidden_states(audio), ref):
        assert float(np.max(np.abs(np.asarray(a) - b.numpy()))) < 1e-4
