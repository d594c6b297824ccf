"""The built-in synthetic corpus: Debian's TTS engines (`synth`), a seeded sentence generator (`text`)
and the TFDS builder with its splits (`build`). Read a built corpus with `data.sources` (`corpus:DIR`)."""
from speechvae_jax.corpus.build import build_corpus, corpus_info

__all__ = ["build_corpus", "corpus_info"]
