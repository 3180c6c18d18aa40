"""The driver of a batch of runs, shared by the experiments' ``run_many``: which runs are still to do, running
them in a pool of worker processes, and recording each as it ends.

:func:`pending` de-duplicates the runs and leaves out those already recorded in the results file.
:class:`Batch` records one batch into one results file: :meth:`Batch.store` appends a finished run's row with
its provenance (and any rows of other files, e.g. its learning curve) as one step that an interrupt never cuts,
:meth:`Batch.fail` reports a run that raised with its key while the others go on, and :meth:`Batch.finish`
raises :class:`~molli_utils.experiments.safeguards.RunsFailed` at the end if any failed (every finished run is stored
by then). :func:`in_pool` runs a function of each run in a :func:`~molli_utils.experiments.safeguards.process_pool`
and hands each result (or error) over as soon as it comes, in the order they finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence, TypeVar

from . import results
from .safeguards import RunsFailed, deferred_signals, first_line, process_pool

__all__ = ["pending", "Batch", "in_pool"]

Run = TypeVar("Run", bound=Hashable)


def pending(runs: Sequence[Run], out: Path, key: Callable[[Run], dict]) -> tuple[list[Run], list[Run]]:
    """``(runs, todo)``: ``runs`` without repeats (a run given twice is trained once, in its first place) and those
    of them whose ``key(run)`` is not yet recorded in the results file ``out``
    (:func:`~molli_utils.experiments.results.pending`)."""
    runs = list(dict.fromkeys(runs))
    return runs, results.pending(runs, out, key)


class Batch:
    """The record of ``total`` runs appended to the results file ``out``; ``key(run)`` names a failed run,
    ``log`` takes every line. Lines of a run start with ``[i/total, seconds since the batch began]``."""

    def __init__(self, out: Path, total: int, key: Callable[[Any], dict], log: Callable[[str], None] = print) -> None:
        self.out, self.total, self.key, self.log = out, total, key, log
        self.rows: list[dict] = []
        self.failed: list[tuple[dict, BaseException]] = []
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the batch began."""
        return time.perf_counter() - self.start

    def store(self, i: int, row: dict, line: str, *also: tuple[Path, Sequence[dict]]) -> dict:
        """Append ``row`` with :func:`~molli_utils.experiments.results.provenance` to ``out``, then each
        ``(path, rows)`` of ``also`` that has rows, with SIGINT and SIGTERM held back meanwhile; log ``line`` as
        run ``i``'s. Returns the stored row."""
        row = {**row, **results.provenance()}
        with deferred_signals():  # an interrupt never cuts a row
            results.append(self.out, [row])
            for path, rows in also:
                if rows:
                    results.append(path, rows)
        self.rows.append(row)
        self.log(f"[{i}/{self.total}, {self.elapsed():.0f} s] {line}")
        return row

    def fail(self, i: int, run: Any, err: BaseException, label: str) -> None:
        """Report that run ``i`` (``label``) raised ``err``: kept with ``key(run)`` for :meth:`finish`, and logged."""
        self.failed.append((self.key(run), err))
        self.log(f"[{i}/{self.total}, {self.elapsed():.0f} s] {label}: FAILED: {type(err).__name__}: {first_line(err)}")

    def finish(self) -> list[dict]:
        """The stored rows; :class:`~molli_utils.experiments.safeguards.RunsFailed` (with every failed run's key and error)
        if any run failed."""
        if self.failed:
            raise RunsFailed(self.failed, len(self.rows), self.out)
        return self.rows


def in_pool(
    fn: Callable[..., Any],
    runs: Sequence[Run],
    args: tuple,
    workers: int,
    done: Callable[[int, Run, Any], None],
    failed: Callable[[int, Run, BaseException], None],
) -> None:
    """``fn(run, *args)`` for every run of ``runs`` on ``workers`` processes
    (:func:`~molli_utils.experiments.safeguards.process_pool`); as each ends, the ``i``-th to end (from 1) calls
    ``done(i, run, value)``, or ``failed(i, run, error)`` if it raised an ``Exception`` (the others go on).
    Leaving by an interrupt terminates the workers."""
    with process_pool(workers) as pool:
        futures = {pool.submit(fn, r, *args): r for r in runs}
        for i, fut in enumerate(cf.as_completed(futures), 1):
            try:
                value = fut.result()
            except Exception as err:  # reported with its key; the other runs go on
                failed(i, futures[fut], err)
                continue
            done(i, futures[fut], value)
