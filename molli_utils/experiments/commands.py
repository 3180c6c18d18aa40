"""The drivers of the experiment commands (:mod:`~molli_utils.experiments.cli` parses the command line): one
function per subcommand that takes the parsed arguments, checks every value, the results folder and (``uci``)
the data sets -- raising :class:`~molli_utils.experiments.safeguards.UsageError` for a bad one, before any work
-- and returns the work itself, a function of no arguments that trains the runs not yet recorded and appends
their rows.

* :func:`toy2d_command` (with ``--noise-floor``: :func:`noise_floor_command`): the toy runs as ensembles, one per worker,
  checkpointed so that an interrupted command resumes mid-run;
* :func:`indm_command`: the INDM runs one after the other;
* :func:`uci_command`: :func:`molli_utils.experiments.uci.run_many`;
* :func:`images_command`: :func:`molli_utils.experiments.images.run_many` (under ``torchrun`` too).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..data.uci import load_uci
from ..runtime import pick_device
from ..training import distributed
from . import images, indm, results, runner, safeguards, settings, toy2d, uci

__all__ = ["toy2d_command", "noise_floor_command", "indm_command", "uci_command", "images_command"]


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The run fields given on the command line (the others keep the profile's values)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _log_rows(rows: Sequence[dict], keys: Sequence[str]) -> None:
    for row in rows:
        print(", ".join(f"{k}={row[k]}" for k in keys if k in row))


def _runs(make: Callable[[], list]) -> list:
    """The runs ``make()`` builds, without repeats; a run setting they refuse is a :class:`~molli_utils.experiments.safeguards.UsageError`."""
    try:
        return list(dict.fromkeys(make()))
    except (ValueError, TypeError) as err:
        raise safeguards.UsageError(str(err)) from None


def train_ensemble(
    runs: list,
    threads: int,
    progress: bool,
    checkpoint_dir: Optional[str] = None,
) -> tuple[list[dict], list[dict], list[dict], float]:
    """One worker of the toy command: its runs as one ensemble (checkpointed in ``checkpoint_dir``); the rows, the
    early curves, the dead units over training (every ``steps // n_evals`` steps), the training seconds."""
    torch.set_num_threads(threads)
    outcome = toy2d.run(
        runs,
        progress=progress,
        dead_units_every=max(1, runs[0].steps // runs[0].n_evals),
        checkpoint_dir=checkpoint_dir,
    )
    return outcome.rows, outcome.curve(), outcome.dead, outcome.train.elapsed


def _train_nth(item: tuple, threads: int, progress: bool) -> tuple:
    """:func:`train_ensemble` of the ``(n, runs, checkpoint_dir)`` of one ensemble of the toy command."""
    _, group, where = item
    return train_ensemble(group, threads, progress, where)


def toy2d_command(args: argparse.Namespace) -> Callable[[], None]:
    if args.noise_floor is not None:
        return noise_floor_command(args)
    runs = _runs(
        lambda: [
            r
            for a in args.activation
            for r in toy2d.grid(
                args.profile,
                datasets=args.datasets,
                modes=args.modes,
                seeds=args.seeds,
                activation=a,
                **_given(args, "steps", "n_train", "n_test", "n_val", "n_samples", "n_evals"),
            )
        ]
    )
    small = sorted({(r.n_train, r.batch_size) for r in runs if r.n_train < r.batch_size})
    if small:
        raise safeguards.UsageError(
            f"--n-train {small[0][0]} is smaller than the batch size ({small[0][1]}); give at least "
            f"{small[0][1]} training points"
        )
    folder = safeguards.check_results_folder(args.results, [toy2d.RESULTS, toy2d.CURVES, toy2d.DEAD_UNITS])
    out = folder / toy2d.RESULTS
    ckpt_root = None if args.checkpoints.lower() == "none" else Path(args.checkpoints)
    if ckpt_root is not None and ckpt_root.exists() and not ckpt_root.is_dir():
        raise safeguards.UsageError(
            f"--checkpoints {ckpt_root} is a file, not a folder; choose another folder (or 'none')"
        )

    def work() -> None:
        start = time.perf_counter()
        _, todo = runner.pending(runs, out, toy2d.key)
        # one ensemble per worker and activation (one architecture per ensemble), at least two runs each (a one-run
        # ensemble takes other kernels: other last bits); the ensembles of an interrupted command first, as they were
        groups = runner.resumable_groups(ckpt_root, out, todo, toy2d.Toy2DRun)
        resumed = len(groups)
        left = [r for r in todo if not any(r in g for g in groups)]
        for activation in args.activation:
            part = [r for r in left if r.activation == activation]
            workers = max(1, min(args.workers or os.cpu_count() or 1, len(part) // 2))
            groups += [g for g in (part[i::workers] for i in range(workers)) if g]
        workers = max(1, min(args.workers or os.cpu_count() or 1, len(groups)))
        print(
            f"{len(runs) - len(todo)} of {len(runs)} toy runs already in {out}; training {len(todo)} as "
            f"{len(groups)} ensemble(s) of {', '.join(str(len(g)) for g in groups)} on {workers} worker(s)"
            + (f" ({resumed} resumed from {ckpt_root})" if resumed else "")
        )
        if not todo:
            return
        dirs = [None if ckpt_root is None else runner.group_dir(ckpt_root, out, g) for g in groups]
        for group, where in zip(groups, dirs):
            if where is not None:
                runner.save_group(where, out, group)
        batch, seconds = runner.Batch(out, len(todo), toy2d.key), []

        def store(_: int, item: tuple, done: tuple) -> None:
            n, rows, (curve, dead, elapsed) = item[0], done[0], done[1:]
            wall = round(time.perf_counter() - start, 1)
            rows = batch.record(
                [{**row, "wall_seconds_all_runs": wall} for row in rows],
                (out.parent / toy2d.CURVES, curve),
                (out.parent / toy2d.DEAD_UNITS, dead),
            )
            if dirs[n] is not None:
                shutil.rmtree(dirs[n], ignore_errors=True)
            seconds.append(elapsed)
            _log_rows(
                rows, ("dataset", "mode", "seed", "activation", "mmd2", "test_loglik", "best_step", "mmd2_best_val")
            )

        def fail(_: int, item: tuple, err: BaseException) -> None:
            n, group = item[0], item[1]
            line = f"ensemble {n + 1} of {len(groups)} ({len(group)} runs) FAILED: {type(err).__name__}: {err}"
            batch.fail_runs(group, err, line)

        items = [(n, g, dirs[n] and str(dirs[n])) for n, g in enumerate(groups)]
        if workers == 1:
            runner.in_turn(_train_nth, items, (args.threads, not args.no_progress), store, fail)
        else:
            runner.in_pool(_train_nth, items, (args.threads, False), workers, store, fail)
        wall = time.perf_counter() - start
        print(
            f"appended {len(batch.rows)} runs to {out} ({wall:.0f} s wall; training "
            f"{', '.join(f'{s:.0f}' for s in seconds)} s per ensemble)"
        )
        batch.finish()

    return work


def noise_floor_command(args: argparse.Namespace) -> Callable[[], None]:
    for name in ("n_samples", "n_test"):
        if getattr(args, name) is not None and getattr(args, name) < 2:
            flag = f"--{name.replace('_', '-')}"
            raise safeguards.UsageError(f"{flag} must be at least 2 for an MMD^2, got {getattr(args, name)}")
    floor = safeguards.check_results_folder(args.results, [toy2d.NOISE_FLOOR]) / toy2d.NOISE_FLOOR

    def work() -> None:
        start = time.perf_counter()
        torch.set_num_threads(args.threads)
        done, key = results.recorded(floor), results.FILES[toy2d.NOISE_FLOOR].key
        rows = [
            {**row, **results.provenance()}
            for d in args.datasets
            for row in toy2d.noise_floor(d, args.noise_floor, **_given(args, "n_samples", "n_test"))
            if results.record_key(row, key) not in done
        ]
        with safeguards.deferred_signals():
            results.append(floor, rows)
        print(f"appended {len(rows)} noise-floor values to {floor} ({time.perf_counter() - start:.0f} s)")

    return work


def _indm_row(config: Any, progress: bool) -> dict:
    """The row of one INDM run."""
    return indm.run(config, progress=progress).row


def indm_command(args: argparse.Namespace) -> Callable[[], None]:
    runs = _runs(
        lambda: indm.grid(
            args.profile,
            datasets=args.datasets,
            flows=args.flows,
            seeds=args.seeds,
            **_given(args, "steps", "n_samples", "sample_steps", "draws"),
        )
    )
    out = safeguards.check_results_folder(args.results, [indm.RESULTS]) / indm.RESULTS

    def work() -> None:
        torch.set_num_threads(args.threads)
        _, todo = runner.pending(runs, out, indm.key)
        print(f"{len(runs) - len(todo)} of {len(runs)} INDM runs already in {out}; running {len(todo)}")
        batch = runner.Batch(out, len(todo), indm.key)

        def store(_: int, config: Any, row: dict) -> None:
            stored = batch.record([row])
            _log_rows(stored, list(stored[0]))

        def fail(_: int, config: Any, err: BaseException) -> None:
            batch.fail_runs([config], err, f"{config}: FAILED: {type(err).__name__}: {err}")

        runner.in_turn(_indm_row, todo, (not args.no_progress,), store, fail)
        batch.finish()

    return work


def uci_command(args: argparse.Namespace) -> Callable[[], None]:
    axes = {
        "datasets": args.datasets,
        "flows": args.flows,
        "modes": args.modes,
        "seeds": args.seeds,
        "variants": args.variants,
    }
    if not args.all and all(v is None for v in axes.values()):
        raise safeguards.UsageError(
            "give --all (the paper's grid) or choose runs with --dataset(s) --flow(s) --mode(s) --seed(s)"
        )
    grid_axes = {k: v for k, v in axes.items() if v is not None}
    runs = _runs(lambda: uci.grid(args.profile, **grid_axes, **_given(args, "epochs", "optimizer", "matmul")))
    if args.root is not None and Path(args.root).exists() and not Path(args.root).is_dir():
        raise safeguards.UsageError(f"--root {args.root} is a file; give the folder that holds NAME/data.npy")
    folder = safeguards.check_results_folder(args.results, [uci.RESULTS, uci.CURVES])
    for name in dict.fromkeys(r.dataset for r in runs):  # each data set loaded (or downloaded) once, up front
        try:
            load_uci(name, args.root)
        except (FileNotFoundError, ValueError) as err:
            raise safeguards.UsageError(str(err)) from None
    return lambda: uci.run_many(runs, folder, workers=args.workers, root=args.root) and None


def images_command(args: argparse.Namespace) -> Callable[[], None]:
    if args.workers > 1:
        if distributed.context().distributed:
            raise safeguards.UsageError("--workers runs one-process runs side by side; under torchrun leave it at 1")
    profile = args.profile or ("quick" if args.dataset == "digits" else "full")
    axes = {"models": args.models, "modes": args.modes, "schedules": args.schedules, "taus": args.taus}
    if args.ablation:  # Table 2: the Gaussian mode with every schedule (and the sigmoid's temperatures)
        ablation = settings.IMAGE_ABLATION
        axes = {
            "models": args.models or list(ablation["models"]),
            "modes": ["gaussian"],
            "schedules": args.schedules or list(ablation["schedules"]),
            "taus": args.taus or list(ablation["taus"]),
        }
    grid_axes = {k: v for k, v in axes.items() if v is not None}
    runs = _runs(
        lambda: images.grid(
            profile,
            seeds=args.seeds,
            **grid_axes,
            **_given(
                args, "dataset", "variant", "epochs", "width", "n_score", "precision", "grad_clip", "decoder_variance"
            ),
        )
    )
    names = sorted({images.results_file(r.dataset) for r in runs})
    folder = safeguards.check_results_folder(args.results, names)
    if Path(args.checkpoints).exists() and not Path(args.checkpoints).is_dir():
        raise safeguards.UsageError(f"--checkpoints {args.checkpoints} is a file, not a folder; choose another folder")

    try:
        chosen = pick_device()
    except ValueError as err:
        raise safeguards.UsageError(str(err)) from None

    def work() -> None:
        ctx, device = distributed.setup(chosen)
        if device.type == "cpu":
            torch.set_num_threads(args.threads)
        try:
            images.run_many(
                runs,
                folder,
                workers=args.workers,
                device=device,
                checkpoints=args.checkpoints,
                use_fid="never" if args.stand_in else "always",
                threads=args.threads,
                progress=not args.no_progress and args.workers == 1,
                dist=ctx,
            )
        finally:
            distributed.cleanup()

    return work
