"""Loading a trained run for inference: `load_for_inference(workdir) -> InferenceModel`."""
from speechvae_jax.inference.model import InferenceModel, load_for_inference

__all__ = ["InferenceModel", "load_for_inference"]
