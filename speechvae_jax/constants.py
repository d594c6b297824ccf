"""Numbers of the method that every layer shares (the bottom of the import order).

Audio is 16 kHz mono everywhere; a latent frame covers LATENT_HOP samples (40 Hz) and holds
LATENT_DIM channels. Run configs carry `model.hop` / `model.latent_dim`: code that has a config
reads them from it; these are the defaults the presets use.
"""
SAMPLE_RATE = 16000
LATENT_HOP = 400
LATENT_RATE = SAMPLE_RATE / LATENT_HOP  # 40.0 Hz
LATENT_DIM = 64

# The keyword-spotting label set of SUPERB KS (Speech Commands v1): ten command words, every other
# word as "unknown", background noise as "silence". The built-in corpus and Speech-Commands folders
# share it.
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_LABEL, SILENCE_LABEL = "_unknown_", "_silence_"
