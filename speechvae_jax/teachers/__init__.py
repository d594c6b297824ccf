"""SSL teachers: Flax ports of WavLM / HuBERT / wav2vec2, weight import, in-house pre-training,
teacher targets at the latent rate and a feature cache (docs/teachers.md)."""
from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.store import Teacher, build_teacher, load_teacher

__all__ = ["EncoderConfig", "Teacher", "build_teacher", "load_teacher"]
