"""Paths and writes that work on local disks and on object stores (gs://...), via etils `epath`.

`atomic_write_*` never leave a half-written file behind: on a local disk the bytes go to a temporary
file in the same folder that is then renamed over the target; on an object store an object appears
whole when its upload completes. Files written by native writers that only know local paths (the
ArrayRecord shards of an export) are written to `staging_path(target)` and moved into place by
`publish`; readers of such files get a local copy of an object from `cached_copy`.
`ensure_writable(dir)` fails early, naming the path, when a run or export folder cannot be created
or written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
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


def exists(path: PathLike) -> bool:
    return as_path(path).exists()


def file_size(path: PathLike) -> int:
    """Size in bytes of a local file or an object."""
    if is_remote(path):
        return int(as_path(path).stat().length)
    return os.path.getsize(as_path(path))


def cache_root() -> str:
    """Local cache folder: $SPEECHVAE_CACHE, else ~/.cache/speechvae_jax."""
    return os.environ.get("SPEECHVAE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "speechvae_jax")


def staging_path(target: PathLike, tag: str) -> str:
    """A local path to write `target`'s bytes to before `publish`: `target.tmp-TAG` beside a local
    target; a fresh file under the system temporary folder for an object-store target."""
    if not is_remote(target):
        return f"{as_path(target)}.tmp-{tag}"
    folder = tempfile.mkdtemp(prefix="speechvae-staging-")
    return os.path.join(folder, f"{as_path(target).name}.tmp-{tag}")


def publish(staged: str, target: PathLike) -> None:
    """Move the finished local file `staged` to `target`: a rename on a local disk; an upload (the
    object appears whole when it completes) then removal of the staged file for an object store."""
    if not is_remote(target):
        os.replace(staged, as_path(target))
        return
    try:
        with open(staged, "rb") as src, as_path(target).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    finally:
        shutil.rmtree(os.path.dirname(staged), ignore_errors=True)


def cached_copy(path: PathLike, size: int | None = None, fresh: bool = False) -> str:
    """A local path holding the bytes of `path`: the path itself on a local disk; for an object, a
    copy under cache_root()/remote/SCHEME/BUCKET/..., fetched again when its size differs from
    `size` (default: the object's size now) or always, with `fresh`."""
    if not is_remote(path):
        return os.fspath(as_path(path))
    if size is None:
        size = file_size(path)
    scheme, rest = os.fspath(path).split("://", 1)
    local = os.path.join(cache_root(), "remote", scheme, rest)
    if not fresh and os.path.exists(local) and os.path.getsize(local) == size:
        return local
    os.makedirs(os.path.dirname(local), exist_ok=True)
    tmp = f"{local}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with as_path(path).open("rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        if os.path.getsize(tmp) != size:
            raise OSError(f"{path}: fetched {os.path.getsize(tmp)} bytes, expected {size}")
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return local


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
