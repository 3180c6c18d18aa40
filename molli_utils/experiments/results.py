"""Where the book's results live and how runs are added to them (what each file holds: :mod:`.schema`).

* The **stored results** ship inside the package (``molli_utils/results/*.csv``, read through
  ``importlib.resources``), so a chapter opened alone on Colab reads the results of its own
  version, offline: :func:`load`.
* A **command** (``python -m molli_utils.experiments ...``) appends one row per finished run to
  a results folder: ``--results DIR``, else ``$MOLLI_RESULTS``, else ``./results`` under the
  current directory (:func:`results_dir`) -- never into an installed package. The book's own
  tables are updated from a checkout with ``--results molli_utils/results``.
* Runs already in a file are skipped (:func:`recorded`, :func:`pending`), so an interrupted
  table resumes where it stopped. A row whose score is missing (NaN or empty, and no
  divergence recorded) does not count as done.
* Appends are safe to run from several processes at once: each takes an exclusive lock on
  the file, writes the header only into an empty file, skips rows whose run is already
  recorded (warning), and is flushed to disk before the lock is released. A file whose last
  line was cut, or a ``.gz`` file whose stream was cut, is refused before anything is
  written, with the fix (:func:`check_intact`).
* Every row carries its **provenance** (:func:`provenance`): the commit, whether the checkout had
  uncommitted changes (``dirty``), and the date.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import importlib.resources
import io
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar, Union

from ..runtime import git_commit, git_dirty
from .schema import FILES, SCORES, VOLATILE, ResultsFile

__all__ = [
    "ResultsFile",
    "FILES",
    "stored_path",
    "load",
    "select",
    "VOLATILE",
    "results_dir",
    "append",
    "recorded",
    "pending",
    "provenance",
    "record_key",
    "run_key",
    "check_intact",
    "DamagedResultsError",
]

Run = TypeVar("Run")


class DamagedResultsError(ValueError):
    """A results file that was cut while being written (a partial last line, a truncated gzip stream)."""


def _file(name: str) -> ResultsFile:
    if name not in FILES:
        raise ValueError(f"unknown results file {name!r}; the book's results files are {list(FILES)}")
    return FILES[name]


def stored_path(name: str) -> Path:
    """The copy of results file ``name`` that ships with this version of the package."""
    _file(name)
    resource = importlib.resources.files("molli_utils") / "results" / name
    if not resource.is_file():
        raise FileNotFoundError(
            f"this installation of molli_utils has no stored {name} (looked in {resource}); "
            f"reinstall the package, or produce it with: {FILES[name].produced_by}"
        )
    return Path(str(resource))


def results_dir(folder: Union[str, os.PathLike, None] = None) -> Path:
    """Where a command writes its results: ``folder``, else ``$MOLLI_RESULTS``, else ``./results``."""
    if folder is not None:
        return Path(folder)
    return Path(os.environ.get("MOLLI_RESULTS") or "results")


def _open_text(path: Path, mode: str):
    return gzip.open(path, mode + "t", newline="") if path.suffix == ".gz" else open(path, mode, newline="")


def load(name: str, folder: Union[str, os.PathLike, None] = None, required: Optional[Sequence[str]] = None):
    """Results file ``name`` as a pandas DataFrame: the stored copy, or the one in ``folder``.

    Raises ``ValueError`` naming the missing columns and the command that rebuilds the file
    (an old file from before a column was added, or a hand-edited one), and
    ``FileNotFoundError`` naming the command when ``folder`` has no such file.
    """
    import pandas as pd

    spec = _file(name)
    path = stored_path(name) if folder is None else Path(folder) / name
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}; produce it with: {spec.produced_by}")
    check_intact(path)
    # A short hash such as 50e9218 parses as a float (inf) unless the column is read as text.
    frame = pd.read_csv(path, dtype={"commit": str})
    need = list(spec.required if required is None else required)
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(
            f"results file {path} lacks the column(s) {missing} that the book needs "
            f"(it has {list(frame.columns)}); re-create it with: {spec.produced_by}"
        )
    return frame


def select(frame: Any, **match: Any) -> Any:
    """The rows of ``frame`` (a DataFrame, or the name of a stored results file) whose columns equal ``match``."""
    frame = load(frame) if isinstance(frame, str) else frame
    for k, v in match.items():
        if k not in frame.columns:
            raise ValueError(f"no column {k!r} to select on; the columns are {list(frame.columns)}")
        frame = frame[frame[k] == v]
    return frame


def provenance(root: Union[str, os.PathLike, None] = None) -> dict[str, Any]:
    """``commit`` (short hash, or ``unknown`` outside a checkout), ``dirty`` (uncommitted changes to
    tracked files other than the stored results; empty when unknown) and ``date`` (UTC, ISO)."""
    dirty = git_dirty(root)
    return {
        "commit": git_commit(root),
        "dirty": "" if dirty is None else dirty,
        "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),
    }


def check_intact(path: Union[str, os.PathLike]) -> None:
    """Raise :class:`DamagedResultsError` if the results file at ``path`` was cut while being written.

    A CSV must end with a newline (a run interrupted mid-write leaves a partial last line, and
    a row appended to it would be glued onto that line); a ``.gz`` file must decompress to the
    end of its last member and end with a newline. An empty file is intact (a new file).
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    fix = (
        f"move {path} away and restore it from git (git checkout -- {path}), or delete its partial last "
        "line by hand, then run the command again (its finished runs are kept; the cut one is re-run)"
    )
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                last = b""
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    last = chunk
        except (EOFError, OSError, gzip.BadGzipFile) as err:
            raise DamagedResultsError(f"{path} is damaged ({err}): {fix}") from None
    else:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
    if not last.endswith(b"\n"):
        raise DamagedResultsError(f"the last line of {path} is cut (no newline at the end): {fix}")


class _Locked:
    """An exclusive advisory lock on ``path`` (``fcntl.flock``; none where fcntl is missing, e.g. Windows)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "_Locked":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock


def append(path: Union[str, os.PathLike], rows: Iterable[dict[str, Any]], name: Optional[str] = None) -> Path:
    """Append ``rows`` to the results file at ``path`` (its name picks the columns unless ``name`` is given).

    A new (or empty) file gets the header; an existing file must have the file's columns, else the
    rows are refused (a file of an older version: re-create it). Keys outside the columns are
    ignored; a ``.gz`` file gets one more gzip member per call. The append holds an exclusive lock
    on the file, refuses a damaged file before writing (:func:`check_intact`), refuses two rows of
    the same run in ``rows`` (``ValueError``), skips with a warning the rows whose run another
    process has recorded meanwhile, and is flushed and synced to disk before the lock is released.
    """
    path = Path(path)
    spec = _file(name or path.name)
    rows = list(rows)
    if spec.key:
        keys = [_row_key(r, spec.key) for r in rows]
        twice = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        if twice:
            raise ValueError(
                f"the rows for {path} hold the same run twice ({dict(zip(spec.key, twice[0]))}); "
                "de-duplicate the runs before training them"
            )
    with _Locked(path):
        check_intact(path)
        new = path.stat().st_size == 0
        if not new:
            with _open_text(path, "r") as f:
                header = next(csv.reader(f), [])
            if tuple(header) != spec.columns:
                raise ValueError(
                    f"{path} has the columns {header}, not those of {spec.name} {list(spec.columns)}; "
                    f"move it away and re-create it with: {spec.produced_by}"
                )
            if spec.key:
                done = recorded(path, spec.name)
                fresh = [r for r in rows if _row_key(r, spec.key) not in done]
                if len(fresh) < len(rows):
                    warnings.warn(
                        f"{len(rows) - len(fresh)} run(s) are already recorded in {path} (another process "
                        "wrote them meanwhile); not written twice",
                        stacklevel=2,
                    )
                rows = fresh
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(spec.columns), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        if rows or new:
            with _open_text(path, "a") as f:
                f.write(text.getvalue())
                f.flush()
                os.fsync(f.fileno()) if path.suffix != ".gz" else None
            if path.suffix == ".gz":
                with open(path, "rb") as raw:
                    os.fsync(raw.fileno())
    return path


def _norm(value: Any) -> Any:
    """A key value in one comparable form: numbers (and number strings) as floats, the rest as strings."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def record_key(values: dict[str, Any], key: Sequence[str]) -> tuple:
    """The recorded-run key of a row (or of a run's key fields): ``values[k]`` for ``k`` in ``key``, normalised."""
    return tuple(_norm(values[k]) for k in key)


def run_key(name: str, run: Any, columns: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The recorded-run key of ``run`` in the results file ``name``, read from :data:`FILES` (the one place a run's
    key is written): for each of ``FILES[name].key``, in order, the run's field of that name, or where the column
    is named otherwise ``columns[column]``: another field's (or property's) name, or a function of the run."""
    out = {}
    for column in _file(name).key:
        how = (columns or {}).get(column, column)
        out[column] = how(run) if callable(how) else getattr(run, how)
    return out


def _row_key(row: dict[str, Any], key: Sequence[str]) -> tuple:
    """The key of a row about to be written: a missing key column is written (and read back) empty."""
    return tuple(_norm(row.get(k, "")) for k in key)


def recorded(path: Union[str, os.PathLike], name: Optional[str] = None) -> set[tuple]:
    """The keys of the runs already in the results file at ``path`` (empty if there is none)."""
    path = Path(path)
    spec = _file(name or path.name)
    if not path.exists():
        return set()
    check_intact(path)
    score = SCORES.get(spec.name)
    with _open_text(path, "r") as f:
        return {record_key(row, spec.key) for row in csv.DictReader(f) if score is None or _finished(row, score)}


def _finished(row: dict[str, Any], score: str) -> bool:
    """Whether a row holds a result: its score is a number (±inf included), or it records a divergence."""
    if (row.get("diverged_at") or "").strip():
        return True
    try:
        return not math.isnan(float(row.get(score) or "nan"))
    except ValueError:
        return False


def pending(
    runs: Sequence[Run], path: Union[str, os.PathLike], key: Callable[[Run], dict[str, Any]], name: Optional[str] = None
) -> list[Run]:
    """The ``runs`` whose key (``key(run)``: the key columns' values) is not yet recorded at ``path``."""
    spec = _file(name or Path(path).name)
    done = recorded(path, spec.name)
    return [r for r in runs if record_key(key(r), spec.key) not in done]
