"""Speech synthesis with the Debian TTS engines: espeak-ng (in-process, ctypes), flite, festival.

Every function returns 16 kHz mono int16 audio. espeak-ng runs through `libespeak-ng.so.1` with
phoneme events enabled, which gives each phoneme's sample position; those become per-phoneme
(start, end) sample indices at 16 kHz.

The espeak-ng library keeps global state, so a process synthesises one utterance at a time;
parallelism comes from worker processes (see `corpus.build`). flite (`-psdur`) and festival
(`utt.save.segs`) report the phones they spoke with their end times; those phones are mapped to
espeak-ng symbols and kept with their timings.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

from speechvae_jax.constants import SAMPLE_RATE

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3


class SynthError(RuntimeError):
    """A TTS engine failed for one utterance (engine, voice and text in the message)."""


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine, its voice name, and (espeak-ng) rate / pitch settings."""
    engine: str  # "espeak" | "flite" | "festival"
    name: str  # espeak "en-us+f3", flite "slt", festival "cmu_us_slt_arctic_hts"
    rate: int = 175  # espeak-ng words per minute
    pitch: int = 50  # espeak-ng base pitch, 0..100

    @property
    def speaker_id(self) -> str:
        if self.engine == "espeak":
            return f"espeak-{self.name.replace('+', '-')}-r{self.rate}-p{self.pitch}"
        return f"{self.engine}-{self.name}"


@dataclasses.dataclass
class Synthesis:
    """Audio int16 [N] at 16 kHz; phonemes [P]; phoneme starts / ends int32 [P] or empty [0]."""
    audio: np.ndarray
    phonemes: list[str]
    starts: np.ndarray
    ends: np.ndarray


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class _Espeak:
    """The process-wide libespeak-ng handle, initialised once with phoneme events on."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as e:
            raise SynthError(f"libespeak-ng.so.1 not found (apt-get install libespeak-ng1): {e}") from e
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                               _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise SynthError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._cb)

    def _collect(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode("ascii")))
            i += 1
        return 0

    def speak(self, voice: Voice, text: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Native-rate int16 audio and (sample, phoneme) events, pauses ("_...") included."""
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SynthError(f"espeak-ng has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, voice.rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                 None, None) != 0:
            raise SynthError(f"espeak-ng failed on {text!r} with voice {voice.name}")
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.int16), list(self._events)


_ESPEAK: _Espeak | None = None


def _espeak() -> _Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    return _ESPEAK


def _to_16k_int16(audio: np.ndarray, rate: int) -> np.ndarray:
    x = audio.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _phoneme_spans(events: list[tuple[int, str]], total: int, scale: float):
    """Phoneme names and [start, end) samples at 16 kHz; pause events only close spans."""
    names, starts, ends = [], [], []
    bounds = [s for s, _ in events] + [total]
    for (pos, name), nxt in zip(events, bounds[1:]):
        if name.startswith("_") or not name:
            continue
        start, end = int(round(pos * scale)), int(round(nxt * scale))
        if end > start:
            names.append(name)
            starts.append(start)
            ends.append(end)
    return names, np.asarray(starts, np.int32), np.asarray(ends, np.int32)


def speak_espeak(voice: Voice, text: str) -> Synthesis:
    """espeak-ng synthesis with per-phoneme sample timings at 16 kHz."""
    eng = _espeak()
    raw, events = eng.speak(voice, text)
    audio = _to_16k_int16(raw, eng.rate)
    names, starts, ends = _phoneme_spans(events, len(raw), SAMPLE_RATE / eng.rate)
    np.minimum(ends, len(audio), out=ends)
    return Synthesis(audio, names, starts, ends)


def _run(cmd: list[str], what: str) -> str:
    """Run an engine's command line; its stdout, or SynthError with its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SynthError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return proc.stdout


def speak_flite(voice: Voice, text: str) -> Synthesis:
    """flite synthesis (kal16, awb, rms, slt); its spoken phones (`-psdur`) with timings."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.wav")
        printed = _run(["flite", "-voice", voice.name, "-psdur", "-t", text, "-o", path],
                       f"flite {voice.name}")
        audio, rate = sf.read(path, dtype="int16")
    audio = _to_16k_int16(audio, rate)
    segs = [(float(end), phone) for phone, _, end in
            (tok.rpartition(":") for tok in printed.split()) if phone]
    return Synthesis(audio, *_radio_spans(segs, audio.size))


# flite and festival's US voices speak the CMU "radio" phone set; these are the espeak-ng
# equivalents.
FESTIVAL_TO_ESPEAK = {
    "aa": "A:", "ae": "a", "ah": "V", "ao": "O:", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI",
    "b": "b", "ch": "tS", "d": "d", "dh": "D", "dx": "t#", "eh": "E", "el": "@L", "em": "m",
    "en": "n-", "er": "3:", "ey": "eI", "f": "f", "g": "g", "hh": "h", "hv": "h", "ih": "I",
    "iy": "i:", "jh": "dZ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "N", "ow": "oU",
    "oy": "OI", "p": "p", "r": "r", "s": "s", "sh": "S", "t": "t", "th": "T", "uh": "U",
    "uw": "u:", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "Z",
}


def _radio_spans(segments: list[tuple[float, str]], length: int):
    """(end seconds, radio phone) pairs -> (espeak-ng symbols, starts, ends) at 16 kHz; "pau"
    segments only close spans."""
    names, starts, ends = [], [], []
    prev = 0
    for end_s, phone in segments:
        end = min(int(round(end_s * SAMPLE_RATE)), length)
        if phone != "pau" and end > prev:
            if phone not in FESTIVAL_TO_ESPEAK:
                raise SynthError(f"phone {phone!r} has no espeak-ng equivalent")
            names.append(FESTIVAL_TO_ESPEAK[phone])
            starts.append(prev)
            ends.append(end)
        prev = max(prev, end)
    return names, np.asarray(starts, np.int32), np.asarray(ends, np.int32)


def _festival_segments(path: str) -> list[tuple[float, str]]:
    """Parse festival's `utt.save.segs` file (header, '#', then "end_time 100 phone" lines)."""
    with open(path) as f:
        lines = f.read().split("#", 1)[-1].split("\n")
    return [(float(p[0]), p[2]) for p in (line.split() for line in lines) if len(p) == 3]


def speak_festival(voice: Voice, texts: list[str]) -> list[Synthesis]:
    """festival synthesis of several texts in one process (its start-up dominates short runs).

    Phonemes are the phones festival actually spoke (its segment relation), mapped to espeak-ng
    symbols, with their timings.
    """
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{voice.name})"]
        for i, text in enumerate(texts):
            if '"' in text or "\\" in text:
                raise SynthError(f"festival text must not contain quotes or backslashes: {text!r}")
            lines.append(f'(set! u (utt.synth (Utterance Text "{text}")))')
            lines.append(f'(utt.save.wave u "{tmp}/{i}.wav" \'riff)')
            lines.append(f'(utt.save.segs u "{tmp}/{i}.segs")')
        script = os.path.join(tmp, "job.scm")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        _run(["festival", "-b", script], f"festival {voice.name}")
        out = []
        for i in range(len(texts)):
            audio, rate = sf.read(os.path.join(tmp, f"{i}.wav"), dtype="int16")
            audio = _to_16k_int16(audio, rate)
            segs = _festival_segments(os.path.join(tmp, f"{i}.segs"))
            names, starts, ends = _radio_spans(segs, audio.size)
            out.append(Synthesis(audio, names, starts, ends))
    return out


def synthesize(voice: Voice, texts: list[str]) -> list[Synthesis]:
    """Synthesise `texts` with `voice`; one result per text, in order."""
    if voice.engine == "espeak":
        return [speak_espeak(voice, t) for t in texts]
    if voice.engine == "flite":
        return [speak_flite(voice, t) for t in texts]
    if voice.engine == "festival":
        return speak_festival(voice, texts)
    raise SynthError(f"unknown engine {voice.engine!r}")


def run_job(job) -> list[tuple[str, Synthesis]]:
    """Worker entry: job = [(voice, [(uid, text), ...]), ...] -> [(uid, Synthesis), ...]."""
    out = []
    for voice, items in job:
        out += zip([uid for uid, _ in items], synthesize(voice, [t for _, t in items]))
    return out
