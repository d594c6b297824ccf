"""A flow-matching text-to-speech model over exported latents (the generation axis): text units and
their frame layout (`text`), the DiT (`dit`), flow matching and its ODE samplers (`flow`), and the
TTS objective and sampler on top of them (`tts`)."""
