"""Which frames of a framed signal are real, from the sample mask of right-padded audio."""
import jax
import jax.numpy as jnp


def frame_mask(sample_mask: jax.Array, num_frames: int, hop: int, receptive_field: int = 1) -> jax.Array:
    """[B, N] sample mask (1 = real, a prefix of each row) -> [B, num_frames] bool.

    Frame t reads samples [t * hop, t * hop + receptive_field) and is real when all of them are:
    t < floor((length - receptive_field) / hop) + 1. With receptive_field 1 (the latent grid) a frame is
    real when its first sample is (T = ceil(length / hop)); for an SSL teacher's conv stack pass its
    receptive field (400) and hop (320).
    """
    lengths = jnp.sum(sample_mask > 0, axis=-1).astype(jnp.int32)
    count = jnp.where(lengths >= receptive_field, (lengths - receptive_field) // hop + 1, 0)
    return jnp.arange(num_frames)[None, :] < count[:, None]
