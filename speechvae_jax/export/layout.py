"""File names and atomic writes of an export directory.

DIR/settings.json                            what decides the content (written first; a resume must match)
DIR/latents-KKKKK-of-NNNNN.array_record      shard K: the records of source indices [K*S, (K+1)*S)
DIR/latents-KKKKK-of-NNNNN.json              shard K's summary (written last: its presence = shard done)
DIR/manifest.json                            the whole export (written by process 0 at the end)
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

MANIFEST = "manifest.json"
SETTINGS = "settings.json"


def shard_name(k: int, num_shards: int) -> str:
    return f"latents-{k:05d}-of-{num_shards:05d}.array_record"


def summary_name(k: int, num_shards: int) -> str:
    return f"latents-{k:05d}-of-{num_shards:05d}.json"


def summary_of(shard_path: str) -> str:
    """The summary file beside a shard file (same name, `.json`)."""
    return shard_path[:-len(".array_record")] + ".json"


def tmp_path(path: str, process_index: int) -> str:
    return f"{path}.tmp-p{process_index}"


def remove_stale(path: str) -> None:
    """Delete temporary files left for `path` by an interrupted run."""
    for stale in glob.glob(glob.escape(path) + ".tmp-*"):
        os.remove(stale)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
