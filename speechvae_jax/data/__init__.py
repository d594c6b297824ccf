"""Data sources named by a spec (corpus:, folder:, tfds:), audio conditioning with counted skips, source
checks, and the Grain pipelines (training crops; padded utterances for export and evaluation)."""
