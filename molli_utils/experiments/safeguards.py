"""What every experiment command and batch shares: errors found before any work, a results folder checked before
any training, worker pools that stop cleanly, and failures reported without losing the finished runs.

* :class:`UsageError` is what a command raises for a bad value or combination found after parsing (exit code 2,
  one line, before any work); :func:`unique` drops repeated values of a list option;
* :func:`check_results_folder`: the folder is created (or must exist) and be writable (a temporary file is
  created and removed in it), and every results file already in it must be intact
  (:func:`~molli_utils.experiments.results.check_intact`) and have its columns -- checked in the first
  second, not after hours of training;
* :func:`stop_on_signals`: SIGTERM and SIGINT terminate this process's worker processes (any pool's) and raise
  :class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread, so that the same clean-up runs and no pool
  waits for a run to end; :func:`deferred_signals` holds SIGINT and SIGTERM back while a row is appended, so an
  interrupt never cuts a line;
* :func:`process_pool`: a spawn-context pool whose workers ignore SIGINT, die with their parent (Linux), and
  are terminated when the block is left by an exception (an interrupt included): no orphans;
* :class:`RunsFailed`: the runs that raised, each with its key and error, raised after the finished runs were
  stored.

The command line (:mod:`~molli_utils.experiments.cli`) re-exports these names; the batch driver
(:mod:`~molli_utils.experiments.runner`) imports them from here, so that neither imports the other.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import gzip
import multiprocessing as mp
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from . import results

__all__ = [
    "UsageError",
    "RunsFailed",
    "Interrupted",
    "terminate",
    "unique",
    "check_results_folder",
    "stop_on_signals",
    "deferred_signals",
    "process_pool",
    "first_line",
]


class UsageError(ValueError):
    """A command-line value or combination that the command refuses before doing any work (exit code 2)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) received: raised in the main thread so that the command stops as on Ctrl-C."""


class RunsFailed(RuntimeError):
    """Some runs raised; every run that finished was stored before this was raised.

    ``failures``: one ``(key, error)`` pair per failed run (``key``: the run's recorded-run key, a dict).
    """

    def __init__(self, failures: Sequence[tuple[dict, BaseException]], stored: int, where: Union[str, os.PathLike]):
        self.failures, self.stored = list(failures), stored
        lines = [
            f"{', '.join(f'{k}={v}' for k, v in key.items())}: {type(err).__name__}: {first_line(err)}"
            for key, err in self.failures
        ]
        super().__init__(
            f"{len(self.failures)} run(s) failed ({stored} finished run(s) are stored in {where}; "
            "fix the cause and run the same command again to run only the missing ones):\n  " + "\n  ".join(lines)
        )


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or ``repr(err)`` when the message is empty (how a failure is logged)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)


def unique(values: Optional[Sequence[Any]], what: str, note=None) -> Optional[list]:
    """``values`` without repeats, in their order (``None`` stays ``None``); ``note(message)`` is told of repeats."""
    if values is None:
        return None
    kept = list(dict.fromkeys(values))
    if len(kept) < len(values) and note is not None:
        note(
            f"note: {what} {' '.join(map(str, values))} repeat(s) a value; running {' '.join(map(str, kept))} once each"
        )
    return kept


def _header(path: Path) -> list[str]:
    opener = gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")
    with opener as f:
        return next(csv.reader(f), [])


def check_results_folder(folder: Union[str, os.PathLike, None], names: Sequence[str]) -> Path:
    """The results folder (:func:`~molli_utils.experiments.results.results_dir`), checked before any work.

    Creates it if missing; raises :class:`UsageError` (with what to do) if it cannot be created or written (a
    temporary file is created and removed there), or if a file ``names`` would be appended to is a folder, not
    writable, damaged (:class:`~molli_utils.experiments.results.DamagedResultsError`'s message) or has other
    columns than its results file's.
    """
    folder = results.results_dir(folder)
    fix = "choose another folder with --results DIR (or $MOLLI_RESULTS)"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"the results folder {folder} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(
            f"cannot write to the results folder {folder} ({err.strerror or err}); {fix}, or make it writable"
        ) from None
    for name in names:
        path, spec = folder / name, results.FILES[name]
        if not path.exists():
            continue
        if not path.is_file():
            raise UsageError(f"{path} is not a file; move it away, or {fix}")
        if not os.access(path, os.W_OK):
            raise UsageError(f"the results file {path} is not writable; make it writable, or {fix}")
        try:
            results.check_intact(path)
            header = _header(path)
        except results.DamagedResultsError as err:
            raise UsageError(str(err)) from None
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
            raise UsageError(f"the results file {path} cannot be read ({err}); move it away, or {fix}") from None
        if tuple(header) != spec.columns:
            raise UsageError(
                f"{path} has the columns {header}, not those of {name} {list(spec.columns)} (a file of "
                f"another version or another table); move it away and re-create it with: "
                f"{spec.produced_by}; or {fix}"
            )
    return folder


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs (main thread only), SIGTERM and SIGINT terminate the worker processes this process
    started (``multiprocessing.active_children()``: a pool that would wait for its running tasks then finds them
    gone) and raise :class:`Interrupted`; the previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        for child in mp.active_children():
            child.terminate()
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


_HELD = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (an append: never cut by an interrupt); a signal that
    arrives meanwhile is delivered when the block ends. A no-op where ``pthread_sigmask`` is missing."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker_init() -> None:
    """In each worker: ignore SIGINT (the parent stops the pool) and, on Linux, die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGTERM when the parent process dies
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def terminate(pool: cf.ProcessPoolExecutor, timeout: float = 10.0) -> None:
    """Cancel the pool's queued tasks and terminate its worker processes (SIGTERM, then SIGKILL after ``timeout``)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout)
        if p.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            p.kill()
            p.join()


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[cf.ProcessPoolExecutor]:
    """A spawn-context ``ProcessPoolExecutor`` of ``workers`` processes; leaving the block by an exception (Ctrl-C,
    SIGTERM under :func:`stop_on_signals`, an error) terminates its workers instead of waiting for them."""
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    try:
        yield pool
    except BaseException:
        terminate(pool)
        raise
    pool.shutdown(wait=True)
