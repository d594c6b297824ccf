"""Zero-shot TTS test lists (LibriSpeech-PC style): what to say, and whose voice to say it in.

Two line formats are read (blank lines and lines starting with "#" are ignored):
- tab-separated, 6 columns, the LibriSpeech-PC test-clean cross-sentence list of F5-TTS:
  `prompt_id  prompt_seconds  prompt_text  target_id  target_seconds  target_text`; ids are
  LibriSpeech utterance ids, found under `audio_root` (any layout: files are indexed by stem);
- "|"-separated, 4 or 5 columns (Seed-TTS style):
  `target_id|prompt_text|prompt_audio|target_text[|target_audio]`; audio paths relative to the
  list's folder unless absolute.
Each entry becomes {"id", "text", "prompt_text", "prompt_id", "prompt_path", "target_seconds"
(float, 0.0 when the list does not say), "reference_path" (the real recording of the target text by
the same speaker, "" when unknown)}; `iter_tts_list` adds "prompt_audio" float32 [N] at 16 kHz.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from speechvae_jax.data import audio as audio_lib


def _audio_index(root: str) -> dict[str, str]:
    """Audio file stem -> path for every audio file under root."""
    index = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.lower().endswith(audio_lib.AUDIO_EXTENSIONS):
                index.setdefault(os.path.splitext(name)[0], os.path.join(dirpath, name))
    return index


def parse_tts_list(list_path: str, audio_root: str | None = None) -> list[dict]:
    """The entries of a test list, without audio. `audio_root` is needed by the tab format.

    Raises ValueError naming the line for a malformed line, FileNotFoundError for a prompt whose
    audio cannot be found."""
    base = os.path.dirname(os.path.abspath(list_path))
    index: dict[str, str] | None = None
    entries = []
    with open(list_path, encoding="utf-8") as f:
        lines = [(n, line.rstrip("\n")) for n, line in enumerate(f, 1)]
    for n, line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{list_path}:{n}"
        tabs, pipes = line.split("\t"), line.split("|")
        if len(tabs) == 6:
            if audio_root is None:
                raise ValueError(f"{where}: a tab-separated (LibriSpeech-PC) list needs audio_root")
            if index is None:
                index = _audio_index(audio_root)
            prompt_id, prompt_s, prompt_text, target_id, target_s, text = (c.strip() for c in tabs)
            if prompt_id not in index:
                raise FileNotFoundError(f"{where}: prompt {prompt_id!r} not found under {audio_root}")
            try:
                target_seconds = float(target_s)
                float(prompt_s)
            except ValueError as e:
                raise ValueError(f"{where}: durations must be numbers: {e}") from e
            entry = {"id": target_id, "text": text, "prompt_text": prompt_text, "prompt_id": prompt_id,
                     "prompt_path": index[prompt_id], "target_seconds": target_seconds,
                     "reference_path": index.get(target_id, "")}
        elif len(pipes) in (4, 5):
            target_id, prompt_text, prompt_audio, text = (c.strip() for c in pipes[:4])
            prompt_path = prompt_audio if os.path.isabs(prompt_audio) else os.path.join(base, prompt_audio)
            if not os.path.exists(prompt_path):
                raise FileNotFoundError(f"{where}: prompt audio {prompt_path} not found")
            ref = pipes[4].strip() if len(pipes) == 5 else ""
            entry = {"id": target_id, "text": text, "prompt_text": prompt_text,
                     "prompt_id": os.path.splitext(os.path.basename(prompt_audio))[0],
                     "prompt_path": prompt_path, "target_seconds": 0.0,
                     "reference_path": (ref if os.path.isabs(ref) else os.path.join(base, ref)) if ref else ""}
        else:
            raise ValueError(f"{where}: expected 6 tab-separated or 4-5 '|'-separated columns, got "
                             f"{len(tabs)} / {len(pipes)}")
        if not entry["id"] or not entry["text"]:
            raise ValueError(f"{where}: empty target id or text")
        entries.append(entry)
    return entries


def iter_tts_list(list_path: str, audio_root: str | None = None, *, process_index: int = 0,
                  process_count: int = 1, skips: audio_lib.SkipLog | None = None) -> Iterator[dict]:
    """Entries of `parse_tts_list` with "prompt_audio" float32 [N] at 16 kHz, entries
    process_index, process_index + process_count, ... (one shard per process). An unreadable
    prompt is counted in `skips` (when given) and its entry left out."""
    skips = skips if skips is not None else audio_lib.SkipLog(list_path)
    for entry in parse_tts_list(list_path, audio_root)[process_index::process_count]:
        try:
            yield {**entry, "prompt_audio": audio_lib.load_audio(entry["prompt_path"])}
        except audio_lib.AudioError as e:
            skips.add(e)
