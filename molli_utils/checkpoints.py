"""One checkpoint format for every trainer of the book: atomic, integrity-checked, weights only.

A checkpoint file is a short text header followed by a ``torch.save`` payload::

    MOLLI-CHECKPOINT 1 sha256=<64 hex digits> bytes=<payload length>\\n<payload>

* :func:`save` writes it atomically: to a temporary file in the same folder, flushed and
  ``fsync``-ed, then ``os.replace``-d over the old file (and the folder ``fsync``-ed), so an
  interruption leaves either the old checkpoint or the new one, never half of one.
* :func:`load` refuses anything that is not exactly what :func:`save` wrote: a file of another
  program (no header), a truncated file (fewer payload bytes than the header says), or a
  damaged one (one flipped byte anywhere in a weight changes the SHA-256). Only then is the
  payload unpickled, with ``torch.load(..., weights_only=True)``: tensors, numbers, strings
  and containers of them, never arbitrary objects. Both trainers also store a *fingerprint*
  of their configuration and refuse to resume from a checkpoint of another run.

Every refusal is a :class:`CheckpointError` (a ``ValueError``) that names the file and says
how to recover: delete it to start the run afresh, or point the trainer at another folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

__all__ = ["CheckpointError", "MAGIC", "save", "load", "check_fingerprint", "require"]

#: First bytes of every checkpoint file.
MAGIC = b"MOLLI-CHECKPOINT 1 "
_HEADER = re.compile(rb"MOLLI-CHECKPOINT 1 sha256=([0-9a-f]{64}) bytes=([0-9]+)\n")
_RECOVER = "delete it to start the run afresh, or point checkpoint_dir / resume_dir at another folder"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: foreign, truncated, damaged, or of another run."""


def save(state: dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Write ``state`` (tensors, numbers, strings, ``None`` and containers of them) to ``path``, atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: Union[str, os.PathLike], map_location: Union[str, torch.device, None] = "cpu") -> dict[str, Any]:
    """The state saved at ``path`` by :func:`save`, after checking its header, length and SHA-256.

    Raises :class:`CheckpointError` for a foreign, truncated or damaged file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read the checkpoint {path} ({err}); {_RECOVER}") from err
    match = _HEADER.match(raw, 0, 200)
    if match is None:
        what = "is empty" if not raw else "is not a molli_utils checkpoint (no MOLLI-CHECKPOINT header)"
        raise CheckpointError(
            f"the checkpoint {path} {what}: it was written by another program or is damaged; {_RECOVER}"
        )
    digest, size = match.group(1).decode(), int(match.group(2))
    payload = raw[match.end() :]
    if len(payload) != size:
        raise CheckpointError(
            f"the checkpoint {path} is truncated or has trailing bytes: {len(payload)} bytes of "
            f"payload instead of {size} (an interrupted copy?); {_RECOVER}"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            f"the checkpoint {path} is damaged: its content does not match its SHA-256 (a changed byte); {_RECOVER}"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:  # an intact file that holds something other than plain state
        raise CheckpointError(
            f"the checkpoint {path} holds objects that cannot be loaded safely ({err}); {_RECOVER}"
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint {path} holds a {type(state).__name__}, not a state dict; {_RECOVER}")
    return state


def check_fingerprint(path: Union[str, os.PathLike], saved: Optional[dict], now: dict) -> None:
    """Raise :class:`CheckpointError` listing every field where ``saved`` (from the file) differs from ``now``."""
    saved = saved or {}
    diffs = [
        f"{k}: {saved.get(k)!r} (checkpoint) != {now.get(k)!r} (now)"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    ]
    if diffs:
        raise CheckpointError(
            f"cannot resume from {path}: it was made with a different configuration ({'; '.join(diffs)}). "
            "Use another checkpoint_dir / resume_dir, or delete the checkpoint to start afresh."
        )


def require(path: Union[str, os.PathLike], state: Any, keys: Sequence[str], where: str = "") -> None:
    """Raise :class:`CheckpointError` (never a ``KeyError``) if ``state`` (a checkpoint, or its part ``where``)
    is not a dict holding every one of ``keys``: a checkpoint of an older version, or an edited one."""
    part = f"its {where!r} part " if where else ""
    if not isinstance(state, dict):
        raise CheckpointError(
            f"the checkpoint {path} is incomplete: {part or 'it '}is a {type(state).__name__}, not a "
            f"dict (written by another version, or edited); {_RECOVER}"
        )
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"the checkpoint {path} is incomplete: {part}lacks {missing} (written by another "
            f"version of the trainer, or edited); {_RECOVER}"
        )
