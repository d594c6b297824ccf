"""The release configuration of arXiv 2604.12383 (METHOD.md), for accelerators.

  speechvae train --config configs/paper.py:joint_marginal --workdir runs/paper \
      --config.data.source=folder:/data/LibriSpeech --config.teacher.path=/ckpt/wavlm-large-converted

Variants (the alignment scheme): joint_marginal (default), time_axis, speechtokenizer_t, d_axis,
marginal_cosine, distance_matrix, none. On CPU this config is only checked by shape evaluation
(tests/train/test_loop.py::test_paper_scale_step_traces).
"""
from speechvae_jax.presets.run import vae_config


def get_config(variant: str = "joint_marginal"):
    c = vae_config("paper", variant)
    c.data.crop_samples = 32768
    c.train.batch_size = 16            # 8 GPUs x 2
    c.train.num_steps = 600_000
    c.teacher.layer = 23               # WavLM-Large, transformer layer 23 of 24
    return c
