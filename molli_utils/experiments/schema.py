"""What the book's results files hold: each file's columns, the columns that identify a run (its key) and its score.

:data:`FILES` maps a file name (``toy2d.csv``, ``uci.csv``...) to its :class:`ResultsFile`; a run's key is read
from there only (:func:`molli_utils.experiments.results.run_key`). :data:`VOLATILE` names the columns that
describe the machine or the moment of a run, never compared between runs. The store that reads and appends
these files is :mod:`molli_utils.experiments.results`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ResultsFile", "FILES", "SCORES", "VOLATILE", "PROVENANCE"]


@dataclass(frozen=True)
class ResultsFile:
    """One results file: its ``columns`` (in order), the ``key`` columns that identify a run, the
    ``required`` columns the book reads, and the command that produces it."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    required: tuple[str, ...]
    produced_by: str


#: The column whose value says a run finished with a result, per file (a NaN or empty value: not done,
#: unless the row records a divergence in ``diverged_at``).
SCORES = {
    "toy2d.csv": "mmd2",
    "toy2d_other_cpu.csv": "mmd2",
    "indm_toy2d.csv": "mmd2",
    "uci.csv": "test_loglik",
    "uci_bf16.csv": "test_loglik",
    "uci_rounding.csv": "test_loglik",
    "images.csv": "score",
    "images_digits.csv": "fd",
}


PROVENANCE = ("commit", "dirty", "date")
#: Columns that describe the machine or the moment of a run, not its result: never compared between two runs.
VOLATILE = frozenset({"train_seconds", "eval_seconds", "wall_seconds_all_runs", "members", "arith", *PROVENANCE})

_TOY2D_COLUMNS = (
    "dataset",
    "mode",
    "seed",
    "activation",
    "mmd2",
    "nonfinite_samples",
    "test_loglik",
    "nonfinite_steps",
    "diverged_at",
    "iterations",
    "mmd2_best_val",
    "nonfinite_samples_best_val",
    "best_step",
    "val_nll_best",
    "val_nll_final",
    "test_loglik_best_val",
    "circle_dist_mean",
    "circle_dist_q50",
    "circle_dist_q90",
    "circle_dist_q99",
    "angle_tv",
    "mmd2_ls0.1",
    "circle_dist_mean_best_val",
    "circle_dist_q50_best_val",
    "circle_dist_q90_best_val",
    "circle_dist_q99_best_val",
    "angle_tv_best_val",
    "mmd2_ls0.1_best_val",
    "members",
    "train_seconds",
    "wall_seconds_all_runs",
    "arith",
    "commit",
    "dirty",
    "date",
)

_TOY2D_KEY = ("dataset", "mode", "seed", "activation", "iterations")

_UCI_COLUMNS = (
    "dataset",
    "flow",
    "variant",
    "mode",
    "seed",
    "test_loglik",
    "test_loglik_best_val",
    "best_epoch",
    "val_loglik",
    "val_loglik_best",
    "nonfinite_steps",
    "diverged_at",
    "epochs",
    "steps",
    "hidden",
    "optimizer",
    "matmul",
    "train_seconds",
    "eval_seconds",
    "arith",
    "commit",
    "date",
    "dirty",
)
_UCI_KEY = ("dataset", "flow", "variant", "mode", "seed", "epochs", "optimizer", "matmul")  # UCIRun fields
_UCI_CURVE_KEY = ("dataset", "flow", "variant", "mode", "seed", "optimizer", "matmul", "epoch")
_UCI_CURVE_COLUMNS = (*_UCI_CURVE_KEY, "train_loss", "val_loglik", "test_loglik")

#: Every results file of the book.
FILES: dict[str, ResultsFile] = {
    f.name: f
    for f in [
        ResultsFile(
            "toy2d.csv",
            _TOY2D_COLUMNS,
            _TOY2D_KEY,
            (
                "dataset",
                "mode",
                "seed",
                "mmd2",
                "test_loglik",
                "iterations",
                "mmd2_best_val",
                "best_step",
                "val_nll_best",
                "test_loglik_best_val",
                "commit",
                "date",
            ),
            "python -m molli_utils.experiments toy2d --modes vanilla mollification constant half clean-half; then "
            "toy2d --datasets mixture_of_gaussians --modes vanilla mollification --seeds 0 1 2 3 4 --activation relu "
            "leaky_relu (the activation ablation)",
        ),
        ResultsFile(
            "toy2d_other_cpu.csv",
            _TOY2D_COLUMNS,
            _TOY2D_KEY,
            (
                "dataset",
                "mode",
                "seed",
                "mmd2",
                "test_loglik",
                "mmd2_ls0.1",
                "circle_dist_q50",
                "circle_dist_q90",
                "commit",
            ),
            "the toy2d command above, run on 2026-12-02 at 50e9218 on another CPU than toy2d.csv's (the rows toy2d.csv "
            "held until 2026-12-05): the same code and seeds, other float rounding; chapter 3 compares the two",
        ),
        ResultsFile(
            "toy2d_curves.csv",
            ("dataset", "mode", "seed", "activation", "iterations", "step", "train_loss"),
            (*_TOY2D_KEY, "step"),
            ("dataset", "mode", "seed", "activation", "iterations", "step", "train_loss"),
            "python -m molli_utils.experiments toy2d (with toy2d.csv): each run's first 2,000 steps of training loss",
        ),
        ResultsFile(
            "toy2d_dead_units.csv",
            (*_TOY2D_KEY, "step", "coupling", "hidden_layer", "dead_fraction"),
            (*_TOY2D_KEY, "step", "coupling", "hidden_layer"),
            (*_TOY2D_KEY, "step", "coupling", "hidden_layer", "dead_fraction"),
            "python -m molli_utils.experiments toy2d (with toy2d.csv, from the activation ablation on): every 1,000 "
            "steps, the fraction of each coupling net's hidden units that are dead on the test points",
        ),
        ResultsFile(
            "toy2d_noise_floor.csv",
            ("dataset", "n_samples", "n_test", "lengthscale", "seed", "repeat", "mmd2", "commit", "dirty", "date"),
            ("dataset", "n_samples", "n_test", "lengthscale", "seed", "repeat"),
            ("dataset", "n_samples", "n_test", "lengthscale", "repeat", "mmd2"),
            "python -m molli_utils.experiments toy2d --noise-floor 20: the MMD^2 of 10,000 fresh draws of each toy "
            "against its test set, 20 times (what a perfect model scores)",
        ),
        ResultsFile(
            "indm_toy2d.csv",
            (
                "dataset",
                "model",
                "flow",
                "seed",
                "steps",
                "mmd2",
                "nonfinite_samples",
                "test_loglik_bound",
                "test_loglik_bound_mc_se",
                "nonfinite_steps",
                "sample_steps",
                "train_seconds",
                "circle_dist_mean",
                "circle_dist_q50",
                "circle_dist_q90",
                "circle_dist_q99",
                "angle_tv",
                "mmd2_ls0.1",
                "arith",
                "commit",
                "dirty",
                "date",
            ),
            ("dataset", "flow", "seed", "steps"),
            (
                "dataset",
                "model",
                "flow",
                "seed",
                "steps",
                "mmd2",
                "test_loglik_bound",
                "test_loglik_bound_mc_se",
                "train_seconds",
                "commit",
                "date",
            ),
            "python -m molli_utils.experiments indm",
        ),
        ResultsFile(
            "uci.csv",
            _UCI_COLUMNS,
            _UCI_KEY,
            (
                "dataset",
                "flow",
                "variant",
                "mode",
                "seed",
                "test_loglik",
                "test_loglik_best_val",
                "best_epoch",
                "epochs",
                "commit",
                "date",
            ),
            "python -m molli_utils.experiments uci --all; then uci --all --modes constant",
        ),
        ResultsFile(
            "uci_bf16.csv",
            _UCI_COLUMNS,
            _UCI_KEY,
            (
                "dataset",
                "flow",
                "variant",
                "mode",
                "seed",
                "test_loglik",
                "test_loglik_best_val",
                "best_epoch",
                "epochs",
                "matmul",
                "train_seconds",
                "commit",
                "date",
            ),
            "python -m molli_utils.experiments uci --all --matmul bf16 --results DIR; DIR/uci.csv is this file: the 72 "
            "vanilla and mollification runs of uci.csv again, with bf16 matrix products (the book's table stays fp32)",
        ),
        ResultsFile(
            "uci_rounding.csv",
            _UCI_COLUMNS,
            _UCI_KEY,
            (
                "dataset",
                "flow",
                "variant",
                "mode",
                "seed",
                "test_loglik",
                "test_loglik_best_val",
                "best_epoch",
                "arith",
                "commit",
            ),
            "MKL_ENABLE_INSTRUCTIONS=AVX2 python -m molli_utils.experiments uci --datasets redwine --flows maf --seeds 1 "
            "--results DIR; DIR/uci.csv and DIR/uci_curves.csv.gz are this file and uci_rounding_curves.csv.gz: chapter "
            "4's two live runs again, with MKL's AVX2 kernels for the products (on a CPU with AVX-512: another rounding)",
        ),
        ResultsFile(
            "uci_rounding_curves.csv.gz",
            _UCI_CURVE_COLUMNS,
            _UCI_CURVE_KEY,
            ("dataset", "flow", "variant", "mode", "seed", "epoch", "train_loss", "val_loglik"),
            "the uci_rounding.csv command above (with it)",
        ),
        ResultsFile(
            "uci_curves.csv.gz",
            _UCI_CURVE_COLUMNS,
            _UCI_CURVE_KEY,
            ("dataset", "flow", "variant", "mode", "seed", "epoch", "val_loglik"),
            "python -m molli_utils.experiments uci --all; then uci --all --modes constant (with uci.csv)",
        ),
        ResultsFile(
            "uci_official_code.csv",
            (
                "dataset",
                "flow",
                "mode",
                "seed",
                "epoch",
                "test_loglik",
                "run_seconds",
                "code_commit",
                "commit",
                "dirty",
                "date",
            ),
            ("dataset", "flow", "mode", "seed", "epoch"),
            ("dataset", "flow", "mode", "seed", "epoch", "test_loglik", "code_commit"),
            "python -m tools.official_uci --code PATH/TO/data-mollification --results molli_utils/results "
            "(the paper's own code, uci/main.py, on the CPU)",
        ),
        ResultsFile(
            "images.csv",
            (
                "dataset",
                "model",
                "mollifier",
                "seed",
                "score_name",
                "score",
                "epochs",
                "steps",
                "width",
                "profile",
                "precision",
                "skipped_steps",
                "seconds_per_step",
                "device",
                "schedule",
                "tau",
                "variant",
                "bpd",
                "world_size",
                "decoder_variance",
                "arith",
                "commit",
                "date",
                "dirty",
            ),
            ("dataset", "model", "mollifier", "schedule", "variant", "seed", "epochs", "width", "decoder_variance"),
            ("dataset", "model", "mollifier", "seed", "score_name", "score", "epochs", "width"),
            "python -m molli_utils.experiments images --dataset cifar10 (a GPU with network access); "
            "then images --dataset cifar10 --ablation",
        ),
        ResultsFile(
            "images_digits.csv",
            (
                "dataset",
                "model",
                "family",
                "mode",
                "schedule",
                "tau",
                "seed",
                "fd",
                "kid",
                "bpd",
                "n_score",
                "epochs",
                "steps",
                "horizon",
                "batch_size",
                "lr",
                "decoder_variance",
                "nonfinite_steps",
                "train_seconds",
                "seconds_per_step",
                "score_seconds",
                "profile",
                "device",
                "world_size",
                "arith",
                "commit",
                "date",
                "dirty",
            ),
            ("dataset", "model", "mode", "schedule", "seed", "epochs", "decoder_variance"),
            (
                "dataset",
                "model",
                "family",
                "mode",
                "schedule",
                "seed",
                "fd",
                "kid",
                "bpd",
                "epochs",
                "steps",
                "decoder_variance",
                "train_seconds",
                "commit",
                "date",
            ),
            "python -m molli_utils.experiments images --dataset digits --results molli_utils/results; then the same "
            "with --ablation; then with --modes vanilla --decoder-variance 1 (the VAEs' unit-variance likelihood)",
        ),
        ResultsFile(
            "chapter_times.csv",
            ("chapter", "profile", "kind", "seconds", "detail", "machine", "commit", "dirty", "date"),
            ("chapter", "profile", "kind"),
            ("chapter", "profile", "kind", "seconds"),
            "python -m tools.chapter_times measure --profile quick (and colab, full); python -m tools.chapter_times estimate",
        ),
        ResultsFile(
            "overhead.csv",
            (
                "train_step_s",
                "mollified_train_step_s",
                "mollifier_call_s",
                "overhead_ratio",
                "end_to_end_ratio",
                "steps",
                "repeats",
                "threads",
                "commit",
                "date",
            ),
            (),
            ("train_step_s", "mollifier_call_s", "overhead_ratio", "commit", "date"),
            "make bench (python -m benchmarks.bench_overhead --results molli_utils/results)",
        ),
    ]
}
