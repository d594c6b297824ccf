"""Reading an export back: `latent_source(DIR)`, a Grain random-access source of records.

The directory may be an object-store prefix (gs://...): shards are then read from local copies
fetched on first access (fileio.cached_copy, under $SPEECHVAE_CACHE).
Record i is the i-th record in shard order (shards in the manifest's order, records in source index
order within a shard): `{"id": str, "latent": float32 [T, L], "num_frames": T, "num_samples": N,
"text", "phonemes", "speaker", ...labels and their frame timings}` (records.py).
"""
from __future__ import annotations

import os

from absl import logging
from array_record.python.array_record_data_source import ArrayRecordDataSource

from speechvae_jax import fileio
from speechvae_jax.export import layout, records


class LatentSource:
    """Grain random-access source over an export directory (`__len__`, `__getitem__`); picklable."""

    def __init__(self, directory: str):
        path = os.path.join(directory, layout.MANIFEST)
        if not fileio.exists(path):
            raise FileNotFoundError(f"{path} not found: {directory!r} is not a finished export "
                                    "(run `speechvae export` to completion first)")
        self.directory = directory
        self.manifest = fileio.read_json(path)
        self._shards = [s for s in self.manifest["shards"] if s["records"] > 0]
        self._len = sum(s["records"] for s in self.manifest["shards"])
        self._data = None
        self._index = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    @property
    def _source(self) -> ArrayRecordDataSource:
        if self._data is None:
            self._data = ArrayRecordDataSource([layout.local_shard(self.directory, s) for s in self._shards])
        return self._data

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict:
        if not -self._len <= index < self._len:
            raise IndexError(f"record {index} out of range for {self._len} records in {self.directory}")
        return records.decode_record(self._source[index % self._len])

    def _summaries(self) -> list[dict]:
        return [fileio.read_json(layout.summary_of(os.path.join(self.directory, s["file"])))
                for s in self.manifest["shards"]]

    def ids(self) -> list[str]:
        """Utterance ids in record order (from the shard summaries; nothing is decoded)."""
        return [uid for s in self._summaries() for uid in s["ids"]]

    def speakers(self) -> list[str]:
        """Speaker labels in record order ("" where none): from the shard summaries, or, for an export
        written before summaries held them, by decoding every record."""
        summaries = self._summaries()
        if all("speakers" in s for s in summaries):
            return [spk for s in summaries for spk in s["speakers"]]
        logging.info("%s: shard summaries without speakers (an older export); reading %d records",
                     self.directory, self._len)
        return [str(self[i].get("speaker", "")) for i in range(self._len)]

    def index_of(self, uid: str) -> int:
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.ids())}
        if uid not in self._index:
            raise KeyError(f"utterance id {uid!r} is not in the export {self.directory}")
        return self._index[uid]

    def __repr__(self) -> str:
        return f"LatentSource({self.directory!r}, records={self._len})"


def latent_source(directory: str) -> LatentSource:
    """The records of a finished export as a Grain random-access source."""
    return LatentSource(directory)
