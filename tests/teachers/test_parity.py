"""Parity of the Flax ports with PyTorch `transformers` on small random models (no downloads)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from speechvae_jax.teachers import load_teacher  # noqa: E402
from speechvae_jax.teachers.convert import convert_checkpoint  # noqa: E402

SMALL = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
             conv_dim=(16, 24, 24), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
             num_conv_pos_embeddings=12, num_conv_pos_embedding_groups=4,
             hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
             layerdrop=0.0, mask_time_prob=0.0)

CASES = {
    "wavlm_base": (transformers.WavLMConfig, transformers.WavLMModel,
                   dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
                        num_buckets=32, max_bucket_distance=60)),
    "wavlm_large": (transformers.WavLMConfig, transformers.WavLMModel,
                    dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                         num_conv_pos_embeddings=13, num_buckets=32, max_bucket_distance=60)),
    "hubert": (transformers.HubertConfig, transformers.HubertModel,
               dict(feat_extract_norm="group", do_stable_layer_norm=False, feat_proj_layer_norm=False)),
    "wav2vec2_large": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model,
                       dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
}


def _randomise(model):
    """Random values for every parameter (norm gains, the WavLM gate constant and biases too)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if p.ndim == 1 or "original0" in name else 1.0
            p.copy_(p + scale * 0.2 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hidden_states_match_transformers(case, tmp_path):
    config_cls, model_cls, extra = CASES[case]
    torch.manual_seed(0)
    model = model_cls(config_cls(**{**SMALL, **extra})).eval()
    _randomise(model)
    model.save_pretrained(tmp_path / "hf")
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "ours"))
    teacher = load_teacher(str(tmp_path / "ours"))
    assert teacher.config.do_normalize == (extra["feat_extract_norm"] == "layer")
    assert len(teacher.params) > 0

    rng = np.random.default_rng(1)
    for n, lengths in ((1600, None), (2345, (2345, 1700)), (3001, (2210, 3001))):
        audio = (0.3 * rng.standard_normal((2, n))).astype(np.float32)
        mask = None
        if lengths is not None:
            mask = (np.arange(n)[None] < np.asarray(lengths)[:, None]).astype(np.float32)
            audio = audio * mask
        ours = teacher.hidden_states(audio, mask)
        x = audio
        if teacher.config.do_normalize:  # what the Hugging Face feature extractor does
            fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
            x = np.stack([fe([a[:layer]], sampling_rate=16000, padding="max_length", max_length=n)["input_values"][0]
                          for a, layer in zip(audio, lengths or (n, n))])
        with torch.no_grad():
            ref = model(torch.from_numpy(np.asarray(x, np.float32)),
                        attention_mask=None if mask is None else torch.from_numpy(mask).long(),
                        output_hidden_states=True).hidden_states
        assert len(ours) == len(ref) == SMALL["num_hidden_layers"] + 1
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert a.shape == tuple(b.shape)
            err = float(np.max(np.abs(np.asarray(a) - b.numpy())))
            assert err < 1e-4, f"{case} n={n} mask={lengths} hidden state {i}: max abs diff {err}"
