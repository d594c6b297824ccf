"""File names of an export directory (a local folder or an object-store prefix such as gs://b/x).

DIR/settings.json                            what decides the content (written first; a resume must match)
DIR/latents-KKKKK-of-NNNNN.array_record      shard K: the records of source indices [K*S, (K+1)*S)
DIR/latents-KKKKK-of-NNNNN.json              shard K's summary (written last: its presence = shard done)
DIR/manifest.json                            the whole export (written by process 0 at the end)

Shards are written locally and moved into place (fileio.staging_path / publish); read back, they
are opened from a local path (`local_shard`: the file itself, or a cached copy of the object).
"""
from __future__ import annotations

import glob
import hashlib
import os

from speechvae_jax import fileio

MANIFEST = "manifest.json"
SETTINGS = "settings.json"


def shard_name(k: int, num_shards: int) -> str:
    return f"latents-{k:05d}-of-{num_shards:05d}.array_record"


def summary_name(k: int, num_shards: int) -> str:
    return f"latents-{k:05d}-of-{num_shards:05d}.json"


def summary_of(shard_path: str) -> str:
    """The summary file beside a shard file (same name, `.json`)."""
    return shard_path[:-len(".array_record")] + ".json"


def remove_stale(path: str) -> None:
    """Delete temporary files left beside a local `path` by an interrupted run (an object-store
    export stages its files on the writer's disk, so none are left there)."""
    if fileio.is_remote(path):
        return
    for stale in glob.glob(glob.escape(path) + ".tmp-*"):
        os.remove(stale)


def local_shard(directory: str, shard: dict, fresh: bool = False) -> str:
    """A local path of the manifest entry `shard` of the export at `directory` (an object is fetched
    into the cache unless a copy of the right size is there; `fresh` fetches it anyway)."""
    return fileio.cached_copy(os.path.join(directory, shard["file"]), shard["bytes"], fresh=fresh)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with fileio.as_path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
