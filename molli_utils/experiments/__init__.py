"""The book's experiments: one home for their settings, runs and results.

* :mod:`~molli_utils.experiments.settings` -- every profile (``quick``, ``colab``, ``full``) of every
  experiment, and the one map from a training mode to a mollifier: the chapters' one entry point, gathering
  :mod:`~molli_utils.experiments.profiles` (profiles and the chapters' own sizes),
  :mod:`~molli_utils.experiments.modes` (mode -> mollifier) and each experiment's budgets;
* :mod:`~molli_utils.experiments.results` -- where results live (shipped with the package; commands
  write to ``./results`` or ``--results DIR``), their columns, the recorded-run keys, provenance;
* one module per experiment, each with a frozen dataclass describing one run (the paper's settings
  as defaults), its ``BUDGETS`` per profile, ``from_profile(profile, **fields)``, ``run(config, callback=None)``
  and ``grid(profile, ...)``:
  :mod:`~molli_utils.experiments.toy2d` (Sec. 4.1), :mod:`~molli_utils.experiments.indm` (INDM on the
  toys), :mod:`~molli_utils.experiments.uci` (Table 4), :mod:`~molli_utils.experiments.images` (Table 1).

A chapter's live run calls the same ``run`` that wrote the stored results. The command line::

    python -m molli_utils.experiments toy2d                        # 2 toys x 3 modes x 3 seeds, 20k steps
    python -m molli_utils.experiments toy2d --modes half           # the first-half schedule too
    python -m molli_utils.experiments toy2d --activation leaky_relu   # LeakyReLU(0.01) conditioners
    python -m molli_utils.experiments toy2d --noise-floor 20       # MMD^2 of the truth itself, 20 times
    python -m molli_utils.experiments indm                         # INDM and plain diffusion, 12 runs
    python -m molli_utils.experiments uci --all                    # Table 4 (official flows): 72 runs on all cores
    python -m molli_utils.experiments uci --all --variants paper-text   # the flows of the paper's text
    python -m molli_utils.experiments uci --all --modes constant   # the constant-noise baseline, 36 runs
    python -m molli_utils.experiments uci --dataset redwine --flow maf --mode mollification --seed 1
    python -m molli_utils.experiments images --dataset cifar10     # Table 1 (a GPU, the network)
    python -m molli_utils.experiments images --dataset digits --workers 2            # Table 1 in miniature (CPU)
    python -m molli_utils.experiments images --dataset digits --ablation --workers 2 # Table 2 in miniature
    python -m molli_utils.experiments images --dataset digits --modes vanilla --decoder-variance 1
                                 # the digits' VAEs with the paper's unit-variance likelihood (chapter 6)

Every command appends one row per finished run to ``--results DIR`` (default ``$MOLLI_RESULTS``, else
``./results``) and skips the runs already there, so an interrupted table resumes. ``--profile quick``
runs the CI-sized version of any of them. The book's stored results are updated from a checkout
with ``--results molli_utils/results``.

Errors come first and short (:mod:`~molli_utils.experiments.cli`): every value, the results folder (created,
writable, its files intact and with their columns) and, for ``uci``, the data sets are checked before any
training; a bad one is a one-line error with exit code 2 (``--debug`` shows the traceback). Repeated values
(``--seeds 1 1``) run once. A run that fails is reported with its key while the others go on and are stored
(exit code 1). Ctrl-C or SIGTERM terminates the workers and exits with code 130, every finished run stored.
The toy ensembles also resume mid-run: each checkpoints into ``--checkpoints DIR`` (default
``./checkpoints/toy2d``; ``none``: off) at every validation step, and the same command again resumes it to
bitwise the rows of an uninterrupted run (the images command resumes its runs from ``./checkpoints/images``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

import torch

from ..data.uci import UCI_NAMES, load_uci
from ..models.indm import INDM_FLOWS
from ..models.tabular import FLOWS, VARIANTS
from ..models.toy import ACTIVATIONS
from ..runtime import pick_device
from ..training import distributed
from ..training.vae import PRECISIONS
from . import cli, images, indm, results, settings, toy2d, uci

__all__ = ["EXPERIMENTS", "main"]

EXPERIMENTS = settings.EXPERIMENTS


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The run fields given on the command line (the others keep the profile's values)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _log_rows(rows: Sequence[dict], keys: Sequence[str]) -> None:
    for row in rows:
        print(", ".join(f"{k}={row[k]}" for k in keys if k in row))


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _unique_lists(args: argparse.Namespace) -> None:
    """Every list-valued option without repeats (``--seeds 1 1`` runs seed 1 once), with a note on stderr."""
    for name, value in vars(args).items():
        if isinstance(value, list):
            setattr(args, name, cli.unique(value, f"--{name.replace('_', '-')}", _note))


def _runs(make: Callable[[], list]) -> list:
    """The runs ``make()`` builds, without repeats; a run setting they refuse is a :class:`cli.UsageError`."""
    try:
        return list(dict.fromkeys(make()))
    except (ValueError, TypeError) as err:
        raise cli.UsageError(str(err)) from None


def _toy_group(
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


def _activation(value: str) -> str:
    """An argparse type: a toy flow's activation, or an error that names the choices."""
    if value not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(f"unknown activation {value!r}; choose one of {', '.join(ACTIVATIONS)}")
    return value


def _group_dir(root: Path, out: Path, group: Sequence[Any]) -> Path:
    """The checkpoint folder of one toy ensemble: named by its results file and its runs."""
    text = json.dumps([str(out.resolve()), sorted(json.dumps(dataclasses.asdict(r), sort_keys=True) for r in group)])
    return root / hashlib.sha256(text.encode()).hexdigest()[:16]


def _checkpointed_groups(root: Optional[Path], out: Path, todo: list) -> list[list]:
    """The ensembles of an interrupted toy command (checkpoint folders under ``root`` whose runs are all still to
    do, for the same results file): resumed as they were."""
    if root is None or not root.is_dir():
        return []
    groups, left = [], set(todo)
    for folder in sorted(root.iterdir()):
        try:
            saved = json.loads((folder / "runs.json").read_text())
            group = [toy2d.Toy2DRun(**r) for r in saved["runs"]]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if saved.get("results") == str(out.resolve()) and set(group) <= left and _group_dir(root, out, group) == folder:
            groups.append(group)
            left -= set(group)
    return groups


def _toy2d(args: argparse.Namespace) -> Callable[[], None]:
    if args.noise_floor is not None:
        return _noise_floor(args)
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
        raise cli.UsageError(
            f"--n-train {small[0][0]} is smaller than the batch size ({small[0][1]}); give at least "
            f"{small[0][1]} training points"
        )
    folder = cli.check_results_folder(args.results, [toy2d.RESULTS, toy2d.CURVES, toy2d.DEAD_UNITS])
    out = folder / toy2d.RESULTS
    ckpt_root = None if args.checkpoints.lower() == "none" else Path(args.checkpoints)
    if ckpt_root is not None and ckpt_root.exists() and not ckpt_root.is_dir():
        raise cli.UsageError(f"--checkpoints {ckpt_root} is a file, not a folder; choose another folder (or 'none')")

    def work() -> None:
        start = time.perf_counter()
        todo = results.pending(runs, out, toy2d.key)
        # one ensemble per worker and activation (one architecture per ensemble), at least two runs each (a one-run
        # ensemble takes other kernels: other last bits); the ensembles of an interrupted command first, as they were
        groups = _checkpointed_groups(ckpt_root, out, todo)
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
        dirs = [None if ckpt_root is None else _group_dir(ckpt_root, out, g) for g in groups]
        for group, where in zip(groups, dirs):
            if where is not None:
                where.mkdir(parents=True, exist_ok=True)
                (where / "runs.json").write_text(
                    json.dumps({"results": str(out.resolve()), "runs": [dataclasses.asdict(r) for r in group]})
                )
        stored, failed, seconds = [], [], []

        def store(i: int, done: tuple) -> None:
            rows, curve, dead, elapsed = done
            wall = round(time.perf_counter() - start, 1)
            rows = [{**row, **results.provenance(), "wall_seconds_all_runs": wall} for row in rows]
            with cli.deferred_signals():  # an interrupt never cuts a row
                results.append(out.parent / toy2d.CURVES, curve)
                results.append(out.parent / toy2d.DEAD_UNITS, dead)
                results.append(out, rows)  # last: a run counts as done only once its curves are stored
            if dirs[i] is not None:
                shutil.rmtree(dirs[i], ignore_errors=True)
            stored.extend(rows)
            seconds.append(elapsed)
            _log_rows(
                rows, ("dataset", "mode", "seed", "activation", "mmd2", "test_loglik", "best_step", "mmd2_best_val")
            )

        def fail(i: int, err: BaseException) -> None:
            failed.extend((toy2d.key(r), err) for r in groups[i])
            print(f"ensemble {i + 1} of {len(groups)} ({len(groups[i])} runs) FAILED: {type(err).__name__}: {err}")

        if workers == 1:
            for i, g in enumerate(groups):
                try:
                    done = _toy_group(g, args.threads, not args.no_progress, dirs[i] and str(dirs[i]))
                except Exception as err:  # the other ensembles go on
                    fail(i, err)
                    continue
                store(i, done)
        else:
            with cli.process_pool(workers) as pool:
                futures = {
                    pool.submit(_toy_group, g, args.threads, False, dirs[i] and str(dirs[i])): i
                    for i, g in enumerate(groups)
                }
                for fut in cf.as_completed(futures):
                    try:
                        done = fut.result()
                    except Exception as err:
                        fail(futures[fut], err)
                        continue
                    store(futures[fut], done)
        wall = time.perf_counter() - start
        print(
            f"appended {len(stored)} runs to {out} ({wall:.0f} s wall; training "
            f"{', '.join(f'{s:.0f}' for s in seconds)} s per ensemble)"
        )
        if failed:
            raise cli.RunsFailed(failed, len(stored), out)

    return work


def _noise_floor(args: argparse.Namespace) -> Callable[[], None]:
    for name in ("n_samples", "n_test"):
        if getattr(args, name) is not None and getattr(args, name) < 2:
            flag = f"--{name.replace('_', '-')}"
            raise cli.UsageError(f"{flag} must be at least 2 for an MMD^2, got {getattr(args, name)}")
    floor = cli.check_results_folder(args.results, [toy2d.NOISE_FLOOR]) / toy2d.NOISE_FLOOR

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
        with cli.deferred_signals():
            results.append(floor, rows)
        print(f"appended {len(rows)} noise-floor values to {floor} ({time.perf_counter() - start:.0f} s)")

    return work


def _indm(args: argparse.Namespace) -> Callable[[], None]:
    runs = _runs(
        lambda: indm.grid(
            args.profile,
            datasets=args.datasets,
            flows=args.flows,
            seeds=args.seeds,
            **_given(args, "steps", "n_samples", "sample_steps", "draws"),
        )
    )
    out = cli.check_results_folder(args.results, [indm.RESULTS]) / indm.RESULTS

    def work() -> None:
        torch.set_num_threads(args.threads)
        todo = results.pending(runs, out, indm.key)
        print(f"{len(runs) - len(todo)} of {len(runs)} INDM runs already in {out}; running {len(todo)}")
        failed, stored = [], 0
        for config in todo:
            try:
                row = {**indm.run(config, progress=not args.no_progress).row, **results.provenance()}
            except Exception as err:  # the other runs go on
                failed.append((indm.key(config), err))
                print(f"{config}: FAILED: {type(err).__name__}: {err}")
                continue
            with cli.deferred_signals():
                results.append(out, [row])
            stored += 1
            _log_rows([row], list(row))
        if failed:
            raise cli.RunsFailed(failed, stored, out)

    return work


def _uci(args: argparse.Namespace) -> Callable[[], None]:
    axes = {
        "datasets": args.datasets,
        "flows": args.flows,
        "modes": args.modes,
        "seeds": args.seeds,
        "variants": args.variants,
    }
    if not args.all and all(v is None for v in axes.values()):
        raise cli.UsageError(
            "give --all (the paper's grid) or choose runs with --dataset(s) --flow(s) --mode(s) --seed(s)"
        )
    grid_axes = {k: v for k, v in axes.items() if v is not None}
    runs = _runs(lambda: uci.grid(args.profile, **grid_axes, **_given(args, "epochs", "optimizer", "matmul")))
    if args.root is not None and Path(args.root).exists() and not Path(args.root).is_dir():
        raise cli.UsageError(f"--root {args.root} is a file; give the folder that holds NAME/data.npy")
    folder = cli.check_results_folder(args.results, [uci.RESULTS, uci.CURVES])
    for name in dict.fromkeys(r.dataset for r in runs):  # each data set loaded (or downloaded) once, up front
        try:
            load_uci(name, args.root)
        except (FileNotFoundError, ValueError) as err:
            raise cli.UsageError(str(err)) from None
    return lambda: uci.run_many(runs, folder, workers=args.workers, root=args.root) and None


def _images(args: argparse.Namespace) -> Callable[[], None]:
    if args.workers > 1:
        if distributed.context().distributed:
            raise cli.UsageError("--workers runs one-process runs side by side; under torchrun leave it at 1")
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
    folder = cli.check_results_folder(args.results, names)
    if Path(args.checkpoints).exists() and not Path(args.checkpoints).is_dir():
        raise cli.UsageError(f"--checkpoints {args.checkpoints} is a file, not a folder; choose another folder")

    try:
        chosen = pick_device()
    except ValueError as err:
        raise cli.UsageError(str(err)) from None

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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``PROG: error: MESSAGE (see PROG --help)``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m molli_utils.experiments", description="Run the book's experiments and append their results."
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="{" + ",".join(EXPERIMENTS) + "}")

    def debug(p: argparse.ArgumentParser) -> None:
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")

    def common(p: argparse.ArgumentParser, default_profile: str = "full") -> None:
        debug(p)
        p.add_argument(
            "--profile",
            choices=settings.PROFILES,
            default=default_profile,
            help=f"settings profile (default: {default_profile}; quick = CI size)",
        )
        p.add_argument(
            "--results",
            default=None,
            help="results folder (default: $MOLLI_RESULTS, else ./results; the book's: molli_utils/results)",
        )

    t = sub.add_parser("toy2d", help="the 2D toys: REAL-NVP vanilla / mollified / constant noise / half (Sec. 4.1)")
    common(t)
    t.add_argument("--datasets", nargs="+", choices=toy2d.DATASETS, default=list(toy2d.DATASETS))
    t.add_argument("--modes", nargs="+", choices=toy2d.MODES, default=["vanilla", "mollification", "constant"])
    t.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=None, help="default: 0 1 2")
    t.add_argument(
        "--activation",
        "--activations",
        nargs="+",
        type=_activation,
        default=["relu"],
        help="the coupling nets' activation(s): relu (default; the stored rows') and/or leaky_relu "
        "(LeakyReLU(0.01)); the paper does not say which it used",
    )
    for name, what in (
        ("steps", "training iterations (paper: 20000)"),
        ("n-train", "training points (paper: 10000)"),
        ("n-test", "test points (paper: 10000)"),
        ("n-val", "validation points for early stopping"),
        ("n-samples", "model samples for MMD^2 (paper: 10000)"),
        ("n-evals", "validation evaluations over the run"),
    ):
        t.add_argument(f"--{name}", type=cli.positive_int, default=None, help=what)
    t.add_argument(
        "--threads", type=cli.positive_int, default=1, help="torch threads per worker (1 is fastest for tiny models)"
    )
    t.add_argument(
        "--workers",
        type=cli.positive_int,
        default=None,
        help="parallel processes, one ensemble each (default: all cores; the rows do not depend on it)",
    )
    t.add_argument(
        "--checkpoints",
        default="checkpoints/toy2d",
        help="resume folder: each ensemble checkpoints into a subfolder (named by the results file and "
        "its runs) at every validation step, so Ctrl-C and the same command again resume it, with "
        "bitwise the rows of an uninterrupted run; removed once its rows are stored; 'none': off",
    )
    t.add_argument("--no-progress", action="store_true")
    t.add_argument(
        "--noise-floor",
        type=cli.positive_int,
        default=None,
        metavar="REPEATS",
        help="train nothing: the MMD^2 of REPEATS sets of n-samples fresh draws of each toy against its "
        "test set (what a perfect model scores) into toy2d_noise_floor.csv",
    )
    t.set_defaults(func=_toy2d)

    d = sub.add_parser("indm", help="INDM (a diffusion in a flow's latent space) vs plain diffusion on the toys")
    common(d)
    d.add_argument("--datasets", nargs="+", choices=toy2d.DATASETS, default=list(toy2d.DATASETS))
    d.add_argument(
        "--flows",
        nargs="+",
        choices=INDM_FLOWS,
        default=list(INDM_FLOWS),
        help="identity = a plain diffusion model; realnvp = INDM",
    )
    d.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=None, help="default: 0 1 2")
    for name, what in (
        ("steps", "training iterations (as the toy flows: 20000)"),
        ("n-samples", "model samples for MMD^2 (10000)"),
        ("sample-steps", "ancestral sampling steps"),
        ("draws", "Monte-Carlo draws of the bound per test point"),
    ):
        d.add_argument(f"--{name}", type=cli.positive_int, default=None, help=what)
    d.add_argument("--threads", type=cli.positive_int, default=1)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_indm)

    u = sub.add_parser("uci", help="UCI density estimation with MAF / REAL-NVP / GLOW (Table 4)")
    common(u)
    u.add_argument("--all", action="store_true", help="the paper's grid on the offline data sets, seeds 1-4")
    u.add_argument("--datasets", "--dataset", nargs="+", choices=UCI_NAMES, default=None)
    u.add_argument("--flows", "--flow", nargs="+", choices=FLOWS, default=None)
    u.add_argument(
        "--modes", "--mode", nargs="+", choices=uci.MODES, default=None, help="default: vanilla mollification"
    )
    u.add_argument("--seeds", "--seed", type=cli.non_negative_int, nargs="+", default=None, help="default: 1 2 3 4")
    u.add_argument(
        "--variants",
        "--variant",
        nargs="+",
        choices=VARIANTS,
        default=None,
        help="official: the flows of the paper's code (default); paper-text: of its Appendix D.4",
    )
    u.add_argument("--epochs", type=cli.positive_int, default=None, help="paper: 150")
    u.add_argument(
        "--optimizer",
        choices=uci.OPTIMIZERS,
        default=None,
        help="adam-fused (default) or adam, PyTorch's default kernel, which the paper-text rows used",
    )
    u.add_argument(
        "--matmul",
        choices=uci.MATMULS,
        default=None,
        help="the training steps' matrix products: fp32 (default, the stored table) or bf16 (bfloat16 "
        "inputs, float32 accumulation: faster on CPUs with AMX; evaluation stays fp32)",
    )
    u.add_argument("--workers", type=cli.positive_int, default=None, help="parallel processes (default: all cores)")
    u.add_argument("--root", default=None, help="folder with NAME/data.npy (default: $MOLLI_DATA/uci)")
    u.set_defaults(func=_uci)

    i = sub.add_parser(
        "images",
        help="Table 1's VAEs and flows and Table 2's schedules: CIFAR-10 / CelebA (a GPU "
        "with network access) or the digits miniature (a CPU); runs under torchrun too",
    )
    debug(i)
    i.add_argument(
        "--profile",
        choices=settings.PROFILES,
        default=None,
        help="settings profile (default: quick for --dataset digits, the miniature; else full)",
    )
    i.add_argument(
        "--results",
        default=None,
        help="results folder (default: $MOLLI_RESULTS, else ./results; the book's: molli_utils/results); "
        "images.csv, or images_digits.csv for the digits",
    )
    i.add_argument("--dataset", choices=images.DATASETS, default=None, help="default: the profile's (full: cifar10)")
    i.add_argument("--models", nargs="+", choices=images.MODELS, default=None, help="default: all seven of Table 1")
    i.add_argument("--modes", nargs="+", choices=images.MODES, default=None, help="default: vanilla gaussian blur")
    i.add_argument(
        "--schedules",
        nargs="+",
        choices=images.SCHEDULES,
        default=None,
        help="noise schedules of the gaussian mode (Table 2; default: sigmoid)",
    )
    i.add_argument(
        "--taus", type=cli.positive_float, nargs="+", default=None, help="the sigmoid's temperatures (default: 0.7)"
    )
    i.add_argument(
        "--ablation",
        action="store_true",
        help="Table 2: the gaussian mode with every schedule and temperature of settings.IMAGE_ABLATION "
        "(default models: glow vae)",
    )
    i.add_argument(
        "--variant",
        choices=images.VARIANTS,
        default=None,
        help="code: GLOW as the paper's official code trains it (default); text: its Appendix D",
    )
    i.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=None, help="default: 1 (digits: 1 2 3 4 5)")
    i.add_argument(
        "--epochs", type=cli.positive_int, default=None, help="default: the paper's (e.g. VAEs 200 on CIFAR-10)"
    )
    i.add_argument(
        "--width", type=cli.positive_float, default=None, help="channel multiplier of the networks (paper: 1)"
    )
    i.add_argument(
        "--n-score",
        "--samples",
        dest="n_score",
        type=cli.positive_int,
        default=None,
        help="generated images for the final score (paper: 50,000)",
    )
    i.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="VAEs. auto: bf16 on Ampere+ GPUs, fp16 with loss scaling on older ones (T4), fp32 on a CPU",
    )
    i.add_argument(
        "--decoder-variance",
        type=cli.positive_float,
        default=None,
        help="VAEs: variance s2 of the decoder's Gaussian likelihood, reconstruction term "
        "||x - x_hat||^2 / (2 s2) (paper: 1, pythae's mse; the digits miniature: 0.1)",
    )
    i.add_argument(
        "--grad-clip", type=cli.positive_float, default=None, help="flows: clip the gradients' 2-norm (default: off)"
    )
    i.add_argument("--checkpoints", default="checkpoints/images", help="resume folder (one subfolder per run)")
    i.add_argument(
        "--stand-in", action="store_true", help="score with the offline stand-in (FD-random-features) instead of FID"
    )
    i.add_argument(
        "--workers", type=cli.positive_int, default=1, help="CPU processes running runs side by side (default 1)"
    )
    i.add_argument("--threads", type=cli.positive_int, default=1, help="torch threads per process on a CPU (default 1)")
    i.add_argument("--no-progress", action="store_true")
    i.set_defaults(func=_images)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m molli_utils.experiments {toy2d,indm,uci,images} ...``.

    Every value is checked, and the results folder with it (:func:`cli.check_results_folder`), before any work: a
    bad one ends the command with a one-line error and exit code 2. Then the runs: one that fails is reported
    with its key while the others go on and are stored, and the command exits with code 1; Ctrl-C or SIGTERM
    stops the workers and exits with code 130, the finished runs stored (the same command resumes). ``--debug``
    shows the traceback of any error instead.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.experiment}"
    _unique_lists(args)
    try:
        work = args.func(args)
    except (ValueError, OSError) as err:  # cli.UsageError, a run setting refused, a results folder unusable
        if args.debug:
            raise
        parser.exit(2, f"{prog}: error: {err}\n")
    try:
        with cli.stop_on_signals():
            work()
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        why = str(err) or "interrupted"
        parser.exit(130, f"{prog}: {why}: the finished runs are stored; run the same command again to resume\n")
    except Exception as err:  # cli.RunsFailed (the others stored), or an error while running
        if args.debug:
            raise
        hint = "" if isinstance(err, cli.RunsFailed) else " (--debug shows the traceback)"
        parser.exit(1, f"{prog}: error: {type(err).__name__}: {err}{hint}\n")
