"""Paths and writes that work on local disks and on object stores (gs://...), via etils `epath`.

`atomic_write_*` never leave a half-written file behind: on a local disk the bytes go to a temporary
file in the same folder that is then renamed over the target; on an object store an object appears
whole when its upload completes. `ensure_writable(dir)` fails early, naming the path, when a run or
export folder cannot be created or written.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np
from etils import epath

PathLike = str | os.PathLike


def is_remote(path: PathLike) -> bool:
    """True for an object-store URL (gs://, s3://, ...), False for a local path."""
    return "://" in os.fspath(path)


def as_path(path: PathLike) -> epath.Path:
    """An epath.Path; local paths are made absolute (so `gs:/x` typos cannot pass as local folders)."""
    p = os.fspath(path)
    if is_remote(p):
        return epath.Path(p)
    if p.startswith(("gs:", "s3:")):
        raise ValueError(f"{p!r} looks like a malformed object-store URL (expected gs://bucket/path)")
    return epath.Path(os.path.abspath(os.path.expanduser(p)))


def require_local(path: PathLike, what: str) -> str:
    """`path` as an absolute local path, or ValueError for an object-store URL that `what` cannot write."""
    if is_remote(path):
        raise ValueError(f"{what} writes to a local folder, not {path}: write it locally, then copy it "
                         "(e.g. gsutil -m cp -r LOCAL_DIR gs://...)")
    return os.fspath(as_path(path))


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    p = as_path(path)
    if is_remote(p):
        p.write_bytes(data)
        return
    tmp = f"{p}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 1, sort_keys: bool = False) -> str:
    """JSON text of obj (numpy scalars and arrays become numbers and lists), newline-terminated."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=_json_default) + "\n"


def atomic_write_json(path: PathLike, obj: Any, sort_keys: bool = False) -> None:
    atomic_write_text(path, to_json(obj, sort_keys=sort_keys))


def read_json(path: PathLike) -> Any:
    return json.loads(as_path(path).read_text())


def ensure_writable(directory: PathLike) -> epath.Path:
    """Create `directory` (and parents) and prove it writable with a probe file; ValueError if not."""
    p = as_path(directory)
    probe = p / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except Exception as e:  # epath raises OSError locally and backend-specific errors remotely
        raise ValueError(f"cannot write to {p}: {type(e).__name__}: {e}") from e
    return p
