"""The command line ``python -m molli_utils.experiments {toy2d,indm,uci,images} ...``: its parser and :func:`main`
(the drivers of the subcommands are :mod:`~molli_utils.experiments.commands`).

* argparse types (:func:`positive_int`, :func:`non_negative_int`, :func:`positive_float`) turn a bad value into
  a one-line error (exit code 2) while the command line is parsed; a bad combination found after parsing is a
  :class:`UsageError` (also exit code 2, one line, before any work);
* what every command shares -- :class:`UsageError`, :class:`RunsFailed`, :class:`Interrupted`,
  :func:`check_results_folder`, :func:`stop_on_signals`, :func:`deferred_signals`, :func:`process_pool`,
  :func:`unique`, :func:`first_line` -- lives in :mod:`~molli_utils.experiments.safeguards` and is re-exported
  here under the names it had before.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn, Optional, Sequence

from ..data.uci import UCI_NAMES
from ..models.indm import INDM_FLOWS
from ..models.tabular import FLOWS, VARIANTS
from ..models.toy import ACTIVATIONS
from ..training.vae import PRECISIONS
from . import commands, images, settings, toy2d, uci
from .safeguards import (
    Interrupted,
    RunsFailed,
    UsageError,
    check_results_folder,
    deferred_signals,
    first_line,
    process_pool,
    stop_on_signals,
    terminate,
    unique,
)

__all__ = [
    "EXPERIMENTS",
    "main",
    "make_parser",
    "UsageError",
    "RunsFailed",
    "Interrupted",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "unique",
    "check_results_folder",
    "stop_on_signals",
    "deferred_signals",
    "process_pool",
    "terminate",
    "first_line",
]

EXPERIMENTS = settings.EXPERIMENTS


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def positive_int(value: str) -> int:
    """An argparse type: an integer >= 1."""
    number = _integer(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more), got {value}")
    return number


def non_negative_int(value: str) -> int:
    """An argparse type: an integer >= 0 (seeds)."""
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (seeds are non-negative), got {value}")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return number


def _activation(value: str) -> str:
    """An argparse type: a toy flow's activation, or an error that names the choices."""
    if value not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(f"unknown activation {value!r}; choose one of {', '.join(ACTIVATIONS)}")
    return value


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _unique_lists(args: argparse.Namespace) -> None:
    """Every list-valued option without repeats (``--seeds 1 1`` runs seed 1 once), with a note on stderr."""
    for name, value in vars(args).items():
        if isinstance(value, list):
            setattr(args, name, unique(value, f"--{name.replace('_', '-')}", _note))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``PROG: error: MESSAGE (see PROG --help)``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
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
    t.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, help="default: 0 1 2")
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
        t.add_argument(f"--{name}", type=positive_int, default=None, help=what)
    t.add_argument(
        "--threads", type=positive_int, default=1, help="torch threads per worker (1 is fastest for tiny models)"
    )
    t.add_argument(
        "--workers",
        type=positive_int,
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
        type=positive_int,
        default=None,
        metavar="REPEATS",
        help="train nothing: the MMD^2 of REPEATS sets of n-samples fresh draws of each toy against its "
        "test set (what a perfect model scores) into toy2d_noise_floor.csv",
    )
    t.set_defaults(func=commands.toy2d_command)

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
    d.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, help="default: 0 1 2")
    for name, what in (
        ("steps", "training iterations (as the toy flows: 20000)"),
        ("n-samples", "model samples for MMD^2 (10000)"),
        ("sample-steps", "ancestral sampling steps"),
        ("draws", "Monte-Carlo draws of the bound per test point"),
    ):
        d.add_argument(f"--{name}", type=positive_int, default=None, help=what)
    d.add_argument("--threads", type=positive_int, default=1)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=commands.indm_command)

    u = sub.add_parser("uci", help="UCI density estimation with MAF / REAL-NVP / GLOW (Table 4)")
    common(u)
    u.add_argument("--all", action="store_true", help="the paper's grid on the offline data sets, seeds 1-4")
    u.add_argument("--datasets", "--dataset", nargs="+", choices=UCI_NAMES, default=None)
    u.add_argument("--flows", "--flow", nargs="+", choices=FLOWS, default=None)
    u.add_argument(
        "--modes", "--mode", nargs="+", choices=uci.MODES, default=None, help="default: vanilla mollification"
    )
    u.add_argument("--seeds", "--seed", type=non_negative_int, nargs="+", default=None, help="default: 1 2 3 4")
    u.add_argument(
        "--variants",
        "--variant",
        nargs="+",
        choices=VARIANTS,
        default=None,
        help="official: the flows of the paper's code (default); paper-text: of its Appendix D.4",
    )
    u.add_argument("--epochs", type=positive_int, default=None, help="paper: 150")
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
    u.add_argument("--workers", type=positive_int, default=None, help="parallel processes (default: all cores)")
    u.add_argument("--root", default=None, help="folder with NAME/data.npy (default: $MOLLI_DATA/uci)")
    u.set_defaults(func=commands.uci_command)

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
        "--taus", type=positive_float, nargs="+", default=None, help="the sigmoid's temperatures (default: 0.7)"
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
    i.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, help="default: 1 (digits: 1 2 3 4 5)")
    i.add_argument("--epochs", type=positive_int, default=None, help="default: the paper's (e.g. VAEs 200 on CIFAR-10)")
    i.add_argument("--width", type=positive_float, default=None, help="channel multiplier of the networks (paper: 1)")
    i.add_argument(
        "--n-score",
        "--samples",
        dest="n_score",
        type=positive_int,
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
        type=positive_float,
        default=None,
        help="VAEs: variance s2 of the decoder's Gaussian likelihood, reconstruction term "
        "||x - x_hat||^2 / (2 s2) (paper: 1, pythae's mse; the digits miniature: 0.1)",
    )
    i.add_argument(
        "--grad-clip", type=positive_float, default=None, help="flows: clip the gradients' 2-norm (default: off)"
    )
    i.add_argument("--checkpoints", default="checkpoints/images", help="resume folder (one subfolder per run)")
    i.add_argument(
        "--stand-in", action="store_true", help="score with the offline stand-in (FD-random-features) instead of FID"
    )
    i.add_argument(
        "--workers", type=positive_int, default=1, help="CPU processes running runs side by side (default 1)"
    )
    i.add_argument("--threads", type=positive_int, default=1, help="torch threads per process on a CPU (default 1)")
    i.add_argument("--no-progress", action="store_true")
    i.set_defaults(func=commands.images_command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m molli_utils.experiments {toy2d,indm,uci,images} ...``.

    Every value is checked, and the results folder with it (:func:`check_results_folder`), before any work: a
    bad one ends the command with a one-line error and exit code 2. Then the runs: one that fails is reported
    with its key while the others go on and are stored, and the command exits with code 1; Ctrl-C or SIGTERM
    stops the workers and exits with code 130, the finished runs stored (the same command resumes). ``--debug``
    shows the traceback of any error instead.
    """
    parser = make_parser()
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.experiment}"
    _unique_lists(args)
    try:
        work = args.func(args)
    except (ValueError, OSError) as err:  # UsageError, a run setting refused, a results folder unusable
        if args.debug:
            raise
        parser.exit(2, f"{prog}: error: {err}\n")
    try:
        with stop_on_signals():
            work()
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        why = str(err) or "interrupted"
        parser.exit(130, f"{prog}: {why}: the finished runs are stored; run the same command again to resume\n")
    except Exception as err:  # RunsFailed (the others stored), or an error while running
        if args.debug:
            raise
        hint = "" if isinstance(err, RunsFailed) else " (--debug shows the traceback)"
        parser.exit(1, f"{prog}: error: {type(err).__name__}: {err}{hint}\n")
