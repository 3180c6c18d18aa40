"""The driver of a batch of runs, shared by every experiment (``uci.run_many``, ``images.run_many`` and the
``toy2d`` and ``indm`` commands of :mod:`~molli_utils.experiments.commands`): which runs are still to do, running
them (in a pool of worker processes, or one after the other here), and recording each as it ends.

:func:`pending` de-duplicates the runs and leaves out those already recorded in the results file.
:class:`Batch` records one batch into one results file: :meth:`Batch.record` appends finished runs' rows with
their provenance after any rows of other files (e.g. their learning curves) as one step that an interrupt never
cuts (:meth:`Batch.store`: one run's row, with a numbered log line), :meth:`Batch.fail` (one run) and
:meth:`Batch.fail_runs` (an ensemble's) report runs that raised, with their keys, while the others go on, and
:meth:`Batch.finish` raises :class:`~molli_utils.experiments.safeguards.RunsFailed` at the end if any failed (every
finished run is stored by then). :func:`in_pool` runs a function of each item (a run, or a group of runs trained
as one ensemble) in a :func:`~molli_utils.experiments.safeguards.process_pool` and hands each result (or error)
over as soon as it comes, in the order they finish; :func:`in_turn` does the same in this process, in order.

Runs trained together as one ensemble resume from a checkpoint folder per ensemble: :func:`group_dir` names it
(by the results file and the runs), :func:`save_group` writes the runs into it, and :func:`resumable_groups`
finds the ensembles of an interrupted batch again, to be trained as they were.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, Sequence, TypeVar

from . import results
from .safeguards import RunsFailed, deferred_signals, first_line, process_pool

__all__ = ["pending", "Batch", "in_pool", "in_turn", "group_dir", "save_group", "resumable_groups"]

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

    def record(self, rows: Sequence[dict], *also: tuple[Path, Sequence[dict]]) -> list[dict]:
        """Append each ``(path, rows)`` of ``also`` that has rows, then ``rows``, each with
        :func:`~molli_utils.experiments.results.provenance`, to ``out``, with SIGINT and SIGTERM held back
        meanwhile; ``out`` last, so that a run counts as done only once its other rows are stored. Returns the
        stored rows."""
        rows = [{**row, **results.provenance()} for row in rows]
        with deferred_signals():  # an interrupt never cuts a row
            for path, other in also:
                if other:
                    results.append(path, other)
            results.append(self.out, rows)
        self.rows.extend(rows)
        return rows

    def store(self, i: int, row: dict, line: str, *also: tuple[Path, Sequence[dict]]) -> dict:
        """:meth:`record` run ``i``'s ``row`` (and ``also``); log ``line`` as run ``i``'s. Returns the stored
        row."""
        row = self.record([row], *also)[0]
        self.log(f"[{i}/{self.total}, {self.elapsed():.0f} s] {line}")
        return row

    def fail(self, i: int, run: Any, err: BaseException, label: str) -> None:
        """Report that run ``i`` (``label``) raised ``err``: kept with ``key(run)`` for :meth:`finish`, and logged."""
        self.failed.append((self.key(run), err))
        self.log(f"[{i}/{self.total}, {self.elapsed():.0f} s] {label}: FAILED: {type(err).__name__}: {first_line(err)}")

    def fail_runs(self, runs: Sequence[Any], err: BaseException, line: str) -> None:
        """Report that ``runs`` (e.g. one ensemble) raised ``err``: each kept with its ``key(run)`` for
        :meth:`finish`; ``line`` logged as it is."""
        self.failed.extend((self.key(r), err) for r in runs)
        self.log(line)

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


def in_turn(
    fn: Callable[..., Any],
    runs: Sequence[Run],
    args: tuple,
    done: Callable[[int, Run, Any], None],
    failed: Callable[[int, Run, BaseException], None],
) -> None:
    """:func:`in_pool` in this process: ``fn(run, *args)`` for every run of ``runs`` in their order; the ``i``-th
    (from 1) calls ``done(i, run, value)``, or ``failed(i, run, error)`` if it raised an ``Exception`` (the others
    go on)."""
    for i, r in enumerate(runs, 1):
        try:
            value = fn(r, *args)
        except Exception as err:  # reported with its key; the other runs go on
            failed(i, r, err)
            continue
        done(i, r, value)


def group_dir(root: Path, out: Path, group: Sequence[Any]) -> Path:
    """The checkpoint folder under ``root`` of the ensemble ``group`` (dataclass runs) recorded into the results
    file ``out``: named by the file and the runs (their order aside)."""
    text = json.dumps([str(out.resolve()), sorted(json.dumps(dataclasses.asdict(r), sort_keys=True) for r in group)])
    return root / hashlib.sha256(text.encode()).hexdigest()[:16]


def save_group(where: Path, out: Path, group: Sequence[Any]) -> None:
    """Create the checkpoint folder ``where`` (:func:`group_dir`) of ``group`` and write its runs and results file
    into ``runs.json`` (what :func:`resumable_groups` reads back)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "runs.json").write_text(
        json.dumps({"results": str(out.resolve()), "runs": [dataclasses.asdict(r) for r in group]})
    )


def resumable_groups(root: Optional[Path], out: Path, todo: Sequence[Run], make: Callable[..., Run]) -> list[list[Run]]:
    """The ensembles of an interrupted batch: the checkpoint folders under ``root`` (:func:`save_group`) for the
    same results file ``out`` whose runs (``make(**fields)``) are all still to do, in the folders' order, each run
    in one of them at most; resumed as they were."""
    if root is None or not root.is_dir():
        return []
    groups, left = [], set(todo)
    for folder in sorted(root.iterdir()):
        try:
            saved = json.loads((folder / "runs.json").read_text())
            group = [make(**r) for r in saved["runs"]]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if saved.get("results") == str(out.resolve()) and set(group) <= left and group_dir(root, out, group) == folder:
            groups.append(group)
            left -= set(group)
    return groups
