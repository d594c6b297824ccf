"""The random-access source interface every data source implements (`data.sources.open_source`)."""
from __future__ import annotations

import abc


class UtteranceSource(abc.ABC):
    """Grain random-access source (`__len__`, `__getitem__`) of standard utterances."""

    spec: str
    split: str

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict:
        """The standard utterance record of item `index` (raises AudioError for a bad item)."""

    def item_name(self, index: int) -> str:
        """A name for item `index` (file path or record id) for error reports, without decoding."""
        return f"{self.spec}[{self.split}][{index}]"

    def labels(self) -> list[dict] | None:
        """Per-item labels known without decoding any audio (e.g. {"speaker", "keyword"}), in index
        order, or None when the source cannot tell them cheaply."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, split={self.split!r}, n={len(self)})"
