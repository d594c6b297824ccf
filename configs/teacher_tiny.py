"""The in-house SSL teacher for the embedded default: HuBERT-style masked prediction of MFCC
k-means clusters (iteration 1), sized to pretrain in a few minutes on a 2-core CPU.

  speechvae teacher pretrain --config configs/teacher_tiny.py --workdir demo_out/teacher \
      --config.data.source=corpus:demo_out/corpus

writes demo_out/teacher/teacher (load with `speechvae_jax.teachers.load_teacher`); the run itself
(checkpoints, metrics.jsonl, tb/) is resumable like any training run. The encoder has the standard
conv geometry (receptive field 400, hop 320: 50 Hz) with narrow channels, a positional conv and 4
pre-norm transformer layers of width 256. docs/teachers.md has its figures.
"""
import ml_collections

from speechvae_jax.data.pipeline import default_data_config
from speechvae_jax.engine.loop import default_mesh_config, default_train_config


def get_config(variant: str = ""):
    del variant  # one teacher recipe
    c = ml_collections.ConfigDict()
    c.data = default_data_config()
    c.data.source = "corpus:demo_out/corpus"
    c.data.crop_samples = 16000
    c.data.normalize = "none"       # the encoder normalises each input itself (do_normalize)
    c.model = ml_collections.ConfigDict(dict(
        kind="hubert", conv_dim=[32, 64, 64, 64, 64, 128, 128], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=True, feat_extract_norm="layer",
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=768,
        do_stable_layer_norm=True, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        do_normalize=True))
    c.labels = ml_collections.ConfigDict(dict(n_mfcc=13, num_clusters=64, kmeans_frames=60000))
    c.masking = ml_collections.ConfigDict(dict(prob=0.65, length=10, masked_weight=0.5))
    c.train = default_train_config()
    c.train.update(dict(batch_size=8, num_steps=500, lr=1e-3, warmup_steps=50, weight_decay=0.01, clip_norm=1.0,
                        feature_grad_mult=1.0, log_every=20, checkpoint_every=100, best_metric="val/loss"))
    c.evals = ml_collections.ConfigDict({"val": {"type": "masked_prediction", "every": 100, "batches": 4}})
    c.mesh = default_mesh_config()
    # Index into the hidden states (0 = embeddings, 4 = last layer); layer 1 is the best transformer
    # layer for frame phoneme probes (docs/teachers.md).
    c.teacher_layer = 1
    return c
