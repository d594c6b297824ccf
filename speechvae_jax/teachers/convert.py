"""Import WavLM / HuBERT / wav2vec2 weights from local PyTorch checkpoints (no downloads).

Sources:
- a Hugging Face directory: `config.json` + `model.safetensors` (or `pytorch_model.bin`), optionally
  `preprocessor_config.json` (its `do_normalize` decides input normalisation);
- an original WavLM `.pt` checkpoint (microsoft/unilm layout): `{"cfg": {...}, "model": state_dict}`.
Original keys are first renamed to Hugging Face names, so one mapping turns both into our params.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re

import numpy as np

from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.store import save_teacher

_HF_PREFIXES = ("wavlm.", "hubert.", "wav2vec2.")
# Hugging Face keys with no counterpart in the encoder's forward pass (pre-training / task heads).
_IGNORED = re.compile(r"^(masked_spec_embed|quantizer\..*|project_hid\..*|project_q\..*|lm_head\..*"
                      r"|label_embeddings_concat|final_proj\..*|label_embs_concat|mask_emb"
                      r"|adapter\..*|classifier\..*|projector\..*)$")


# ----------------------------------------------------------------------------------------------
# Configs.

def config_from_hf(hf: dict, do_normalize: bool | None) -> EncoderConfig:
    """EncoderConfig from a Hugging Face `config.json` dict (WavLM, HuBERT or wav2vec2)."""
    kind = hf.get("model_type")
    if kind not in ("wavlm", "hubert", "wav2vec2"):
        raise ValueError(f"config.json model_type {kind!r} is not wavlm, hubert or wav2vec2")
    if hf.get("conv_pos_batch_norm", False):
        raise ValueError("config.json: conv_pos_batch_norm=True (batch-norm positional conv) is not supported")
    if hf.get("add_adapter", False):
        raise ValueError("config.json: add_adapter=True is not supported")
    if do_normalize is None:
        do_normalize = hf.get("feat_extract_norm") == "layer"
        logging.warning("no preprocessor_config.json: assuming do_normalize=%s from feat_extract_norm=%r",
                        do_normalize, hf.get("feat_extract_norm"))
    return EncoderConfig(
        kind=kind,
        conv_dim=tuple(hf["conv_dim"]), conv_kernel=tuple(hf["conv_kernel"]),
        conv_stride=tuple(hf["conv_stride"]), conv_bias=bool(hf.get("conv_bias", False)),
        feat_extract_norm=hf.get("feat_extract_norm", "group"),
        feat_extract_activation=hf.get("feat_extract_activation", "gelu"),
        feat_proj_layer_norm=bool(hf.get("feat_proj_layer_norm", True)) if kind == "hubert" else True,
        hidden_size=hf["hidden_size"], num_hidden_layers=hf["num_hidden_layers"],
        num_attention_heads=hf["num_attention_heads"], intermediate_size=hf["intermediate_size"],
        hidden_act=hf.get("hidden_act", "gelu"), layer_norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
        do_stable_layer_norm=bool(hf.get("do_stable_layer_norm", False)),
        num_conv_pos_embeddings=hf.get("num_conv_pos_embeddings", 128),
        num_conv_pos_embedding_groups=hf.get("num_conv_pos_embedding_groups", 16),
        num_buckets=hf.get("num_buckets", 320), max_bucket_distance=hf.get("max_bucket_distance", 800),
        do_normalize=bool(do_normalize),
    )


def _eval_conv_spec(spec: str) -> list:
    """Evaluate a fairseq `conv_feature_layers` string like "[(512,10,5)] + [(512,3,2)] * 4"
    (lists, tuples, ints, + and * only)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported conv_feature_layers expression: {spec!r}")
    return ev(ast.parse(spec, mode="eval"))


def config_from_original(cfg: dict) -> EncoderConfig:
    """EncoderConfig from an original WavLM checkpoint's `cfg` dict."""
    layers = _eval_conv_spec(cfg.get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"))
    if not cfg.get("relative_position_embedding", True) or not cfg.get("gru_rel_pos", True):
        raise ValueError("original checkpoint: only WavLM with gated relative position bias is supported")
    return EncoderConfig(
        kind="wavlm",
        conv_dim=tuple(c for c, _, _ in layers), conv_kernel=tuple(k for _, k, _ in layers),
        conv_stride=tuple(s for _, _, s in layers), conv_bias=bool(cfg.get("conv_bias", False)),
        feat_extract_norm="layer" if cfg.get("extractor_mode", "default") == "layer_norm" else "group",
        hidden_size=cfg.get("encoder_embed_dim", 768), num_hidden_layers=cfg.get("encoder_layers", 12),
        num_attention_heads=cfg.get("encoder_attention_heads", 12),
        intermediate_size=cfg.get("encoder_ffn_embed_dim", 3072),
        hidden_act=cfg.get("activation_fn", "gelu"),
        do_stable_layer_norm=bool(cfg.get("layer_norm_first", False)),
        num_conv_pos_embeddings=cfg.get("conv_pos", 128),
        num_conv_pos_embedding_groups=cfg.get("conv_pos_groups", 16),
        num_buckets=cfg.get("num_buckets", 320), max_bucket_distance=cfg.get("max_distance", 800),
        do_normalize=bool(cfg.get("normalize", False)),
    )


# ----------------------------------------------------------------------------------------------
# State dicts.

_ORIGINAL_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.weight$", r"feature_extractor.conv_layers.\1.conv.weight"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.bias$", r"feature_extractor.conv_layers.\1.conv.bias"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2(?:\.1)?\.(weight|bias)$",
     r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^encoder\.pos_conv\.0\.(weight_g|weight_v|bias)$", r"encoder.pos_conv_embed.conv.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_linear\.", r"encoder.layers.\1.attention.gru_rel_pos_linear."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_a$", r"encoder.layers.\1.attention.gru_rel_pos_const"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.",
     r"encoder.layers.\1.attention.rel_attn_embed."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
]


def rename_original(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Original WavLM state-dict keys -> Hugging Face WavLMModel keys."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _ORIGINAL_RENAMES:
            new, n = re.subn(pattern, repl, new)
            if n:
                break
        out[new] = value
    return out


def _t(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.T)


def params_from_hf_state(cfg: EncoderConfig, state: dict[str, np.ndarray]) -> dict:
    """Flax param tree of `SSLEncoder(cfg)` from a Hugging Face state dict (numpy arrays).

    Every key must be used or be a known pre-training/task-head key; a missing or unexpected key is
    an error naming it.
    """
    state = {(k.split(".", 1)[1] if k.startswith(_HF_PREFIXES) else k): v for k, v in state.items()}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise KeyError(f"checkpoint is missing {key!r}")
        used.add(key)
        return np.asarray(state[key], np.float32)

    def dense(prefix: str) -> dict:
        return {"kernel": _t(take(prefix + ".weight")), "bias": take(prefix + ".bias")}

    def ln(prefix: str) -> dict:
        return {"scale": take(prefix + ".weight"), "bias": take(prefix + ".bias")}

    p: dict = {}
    for i in range(len(cfg.conv_dim)):
        pre = f"feature_extractor.conv_layers.{i}"
        conv = {"kernel": np.transpose(take(pre + ".conv.weight"), (2, 1, 0))}
        if cfg.conv_bias:
            conv["bias"] = take(pre + ".conv.bias")
        layer = {"conv": conv}
        if cfg.feat_extract_norm == "layer":
            layer["norm"] = ln(pre + ".layer_norm")
        elif i == 0:
            layer["norm_scale"] = take(pre + ".layer_norm.weight")
            layer["norm_bias"] = take(pre + ".layer_norm.bias")
        p[f"conv_layers_{i}"] = layer
    if cfg.feat_proj_layer_norm:
        p["feature_layer_norm"] = ln("feature_projection.layer_norm")
    p["feature_projection"] = dense("feature_projection.projection")

    pre = "encoder.pos_conv_embed.conv"
    if pre + ".parametrizations.weight.original0" in state:
        g, v = take(pre + ".parametrizations.weight.original0"), take(pre + ".parametrizations.weight.original1")
    else:
        g, v = take(pre + ".weight_g"), take(pre + ".weight_v")
    p["pos_conv"] = {"weight_g": g.reshape(-1), "weight_v": np.transpose(v, (2, 1, 0)),
                     "bias": take(pre + ".bias")}
    if not cfg.do_stable_layer_norm:
        p["encoder_layer_norm"] = ln("encoder.layer_norm")
    else:  # applied only to last_hidden_state, which is not one of the hidden states
        used.update(k for k in ("encoder.layer_norm.weight", "encoder.layer_norm.bias") if k in state)

    for i in range(cfg.num_hidden_layers):
        pre = f"encoder.layers.{i}"
        att = {name: dense(f"{pre}.attention.{name}") for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
        if cfg.kind == "wavlm":
            att["gru_rel_pos_linear"] = dense(f"{pre}.attention.gru_rel_pos_linear")
            att["gru_rel_pos_const"] = take(f"{pre}.attention.gru_rel_pos_const").reshape(-1)
            if i == 0:
                att["rel_attn_embed"] = take(f"{pre}.attention.rel_attn_embed.weight")
        p[f"layers_{i}"] = {
            "attention": att,
            "layer_norm": ln(f"{pre}.layer_norm"),
            "final_layer_norm": ln(f"{pre}.final_layer_norm"),
            "intermediate_dense": dense(f"{pre}.feed_forward.intermediate_dense"),
            "output_dense": dense(f"{pre}.feed_forward.output_dense"),
        }
    unexpected = sorted(k for k in state if k not in used and not _IGNORED.match(k))
    if unexpected:
        raise ValueError(f"checkpoint has keys the {cfg.kind} encoder does not use: {unexpected[:8]}"
                         f"{' ...' if len(unexpected) > 8 else ''}")
    return p


# ----------------------------------------------------------------------------------------------
# Readers and the command.

def _torch_load(path: str) -> dict:
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the message names the file and the reason
        raise ValueError(f"{path}: cannot read as a PyTorch checkpoint ({err})") from err


def _numpy_state(state: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() if hasattr(v, "detach") else np.asarray(v, np.float32)
            for k, v in state.items()}


def read_hf_directory(src: str) -> tuple[EncoderConfig, dict[str, np.ndarray]]:
    """(config, numpy state dict) of a local Hugging Face model directory."""
    cfg_path = os.path.join(src, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{src}: no config.json (expected a Hugging Face model directory)")
    with open(cfg_path) as f:
        hf = json.load(f)
    do_normalize = None
    pre_path = os.path.join(src, "preprocessor_config.json")
    if os.path.isfile(pre_path):
        with open(pre_path) as f:
            do_normalize = bool(json.load(f).get("do_normalize", True))
    cfg = config_from_hf(hf, do_normalize)
    st_path, bin_path = os.path.join(src, "model.safetensors"), os.path.join(src, "pytorch_model.bin")
    if os.path.isfile(st_path):
        from safetensors.numpy import load_file
        state = {k: v.astype(np.float32) for k, v in load_file(st_path).items()}
    elif os.path.isfile(bin_path):
        state = _numpy_state(_torch_load(bin_path))
    else:
        raise FileNotFoundError(f"{src}: neither model.safetensors nor pytorch_model.bin "
                                "(sharded checkpoints are not supported)")
    return cfg, state


def read_original_checkpoint(src: str) -> tuple[EncoderConfig, dict[str, np.ndarray]]:
    """(config, Hugging Face-named numpy state dict) of an original WavLM `.pt` checkpoint."""
    ckpt = _torch_load(src)
    if not isinstance(ckpt, dict) or "cfg" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{src}: expected an original WavLM checkpoint with keys 'cfg' and 'model'")
    return config_from_original(dict(ckpt["cfg"])), rename_original(_numpy_state(ckpt["model"]))


def convert_checkpoint(src: str, dst: str) -> str:
    """Convert SRC (HF directory or original WavLM .pt) to our teacher format in DST; returns DST."""
    if os.path.isdir(src):
        cfg, state = read_hf_directory(src)
    elif os.path.isfile(src):
        cfg, state = read_original_checkpoint(src)
    else:
        raise FileNotFoundError(f"{src}: no such checkpoint file or directory")
    params = params_from_hf_state(cfg, state)
    save_teacher(dst, cfg, params, default_layer=cfg.num_hidden_layers - 1,
                 meta={"source": os.path.abspath(src)})
    return dst
