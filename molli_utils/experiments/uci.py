"""The paper's UCI density-estimation experiment (Sec. 4.3, Table 4, Appendix D.4), run by the book.

One run (:class:`UCIRun`) = (data set, flow, mode, seed): :func:`run` trains a
:func:`~molli_utils.models.tabular.tabular_flow` with :func:`~molli_utils.training.train`
(Adam, lr 1e-4, weight decay 1e-6 as in the paper's code, batch 100, 150 epochs) and returns
one results row and the learning curve:

* ``test_loglik``: mean test log-likelihood (nats) of the model at the end of training
  (the paper's number);
* ``test_loglik_best_val`` / ``best_epoch``: the same for the model of the epoch with the
  best validation log-likelihood (early stopping, evaluated every epoch);
* epochs, steps, times, non-finite steps (the command adds the provenance: commit, dirty, date).

Modes (:data:`~molli_utils.experiments.modes.MODES`): ``vanilla``; ``mollification``
(Gaussian, sigmoid schedule over the whole run, the paper's UCI recipe); ``constant`` (a
fixed noise variance of 0.01 for the whole run: the baseline the paper says does not help).

:func:`run_many` runs a list of configurations in parallel processes (one torch thread
each) and appends each row to the results files as soon as it is done, so an interrupted
table resumes where it stopped (runs already recorded are skipped). The command line is
``python -m molli_utils.experiments uci ...``.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .. import arithmetic
from ..data.uci import UCI_NAMES, load_uci
from ..models.tabular import FLOWS, VARIANTS, recompute_batchnorm_statistics, tabular_flow
from ..runtime import MATMULS, matmul_precision
from ..training import DivergenceError, TrainConfig, TrainResult, train
from . import modes, profiles, results, runner

__all__ = [
    "DATASETS",
    "MODES",
    "RESULTS",
    "CURVES",
    "SEEDS",
    "BUDGETS",
    "IDENTITY",
    "UCIRun",
    "UCIResult",
    "from_profile",
    "run",
    "grid",
    "run_many",
    "key",
    "mean_loglik",
]

DATASETS = ("redwine", "whitewine", "parkinsons")  # the ones runnable offline (miniboone needs a download)
MODES = ("vanilla", "mollification", "constant")
RESULTS, CURVES = "uci.csv", "uci_curves.csv.gz"
OPTIMIZERS = ("adam-fused", "adam")
#: The seeds of the stored results (and the command line's default).
SEEDS = (1, 2, 3, 4)
#: Per profile, the run fields that differ from the paper's defaults (Appendix D.4: 150 epochs; a red-wine run
#: is 1-2 min on one CPU thread).
BUDGETS: dict[str, dict[str, Any]] = {"full": {}, "colab": {}, "quick": {"epochs": 12}}
#: The fields that name a run (not its budget).
IDENTITY = ("dataset", "flow", "mode", "seed")


@dataclass(frozen=True)
class UCIRun:
    """One configuration of the experiment; the defaults are the paper's settings.

    ``variant``: the flows of the paper's official code (``"official"``, the code behind its
    Table 4) or of its text (``"paper-text"``, Appendix D.4); see :mod:`molli_utils.models.tabular`.
    The official variant also follows the code's training: the batch-norm statistics are
    recomputed from the whole training set after every epoch, and the noise level of
    ``mollification`` changes once per epoch (``sigmoid(epoch / epochs)``, uci/main.py:263-270).
    ``optimizer``: Adam with weight decay either way; ``"adam-fused"`` runs PyTorch's fused kernel
    (``torch.optim.Adam(fused=True)``, about 1.25x faster per step here), ``"adam"`` its default
    implementation, which the book's first tables used: the two agree up to float rounding, so a
    run is reproduced bitwise only with the optimizer it was made with.
    ``matmul``: the arithmetic of the training steps' matrix products (:data:`~molli_utils.runtime.MATMULS`):
    ``"fp32"`` in full, as the paper and the book's stored table; ``"bf16"`` rounds their inputs to bfloat16
    and accumulates in float32 (:func:`~molli_utils.runtime.matmul_precision`: about 1.4x faster per run on a
    CPU with AMX, other numbers). Every log-likelihood is evaluated in full float32 either way.
    """

    dataset: str
    flow: str
    mode: str
    seed: int
    variant: str = "official"
    epochs: int = 150
    batch_size: int = 100
    lr: float = 1e-4
    weight_decay: float = 1e-6
    hidden: int = 512
    layers: int = 5
    optimizer: str = "adam-fused"
    matmul: str = "fp32"

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("dataset", self.dataset, UCI_NAMES),
            ("flow", self.flow, FLOWS),
            ("mode", self.mode, MODES),
            ("variant", self.variant, VARIANTS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("matmul", self.matmul, MATMULS),
        ):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")


def from_profile(profile_name: Optional[str] = None, **fields: Any) -> UCIRun:
    """One :class:`UCIRun` of ``profile_name`` (default: :func:`~molli_utils.experiments.profiles.profile`):
    ``BUDGETS[profile]`` with ``fields`` (``dataset``, ``flow``, ``mode``, ``seed``, any other field) on top."""
    return UCIRun(**{**profiles.budget_of(BUDGETS, profile_name), **fields})


def key(r: UCIRun) -> dict[str, Any]:
    """The recorded-run key of ``r`` in ``uci.csv``: its values of the file's key columns
    (:func:`~molli_utils.experiments.results.run_key`)."""
    return results.run_key(RESULTS, r)


def mean_loglik(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 10_000) -> float:
    """Mean log-likelihood (nats) of the rows of ``x`` under ``model`` in eval mode (no gradients), with full
    float32 matrix products whatever the caller's setting."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), matmul_precision("fp32"):
            return float(torch.cat([model.log_prob(b) for b in x.split(batch_size)]).double().mean())
    finally:
        model.train(was_training)


@dataclass
class UCIResult:
    """What :func:`run` returns: the results row, the learning curve (one dict per epoch), the
    final model (in eval mode), the model of the best validation epoch, and the training record
    (``None`` for a diverged run, whose row has nan scores and its ``diverged_at`` step)."""

    config: UCIRun
    row: dict[str, Any]
    curve: list[dict[str, Any]]
    model: torch.nn.Module
    best_model: Optional[torch.nn.Module]
    train: Optional[TrainResult]


def run(
    config: UCIRun,
    *,
    root: Union[str, Path, None] = None,
    progress: Optional[bool] = None,
    checkpoint_dir: Union[str, Path, None] = None,
    device: Union[str, torch.device] = "cpu",
    callback: Optional[Callable[[int, torch.nn.Module], None]] = None,
) -> UCIResult:
    """Train one configuration and score it; ``callback(steps_done, model)`` runs after every step."""
    data = load_uci(config.dataset, root)
    train_x, val_x, test_x = (torch.from_numpy(a) for a in (data.train, data.val, data.test))
    train_config = TrainConfig(
        batch_size=config.batch_size,
        lr=config.lr,
        epochs=config.epochs,
        seed=config.seed,
        drop_last=False,
        log_every=None,
        progress=progress,
        desc=f"{config.dataset}/{config.flow}/{config.mode}/{config.seed}",
        checkpoint_dir=checkpoint_dir,
        device=device,
    )
    train_config = replace(
        train_config, log_every=train_config.steps_per_epoch(len(train_x))
    )  # one loss point per epoch
    model = tabular_flow(
        config.flow, data.dim, hidden=config.hidden, layers=config.layers, variant=config.variant, seed=config.seed
    )
    fused = config.optimizer == "adam-fused"  # "adam": the multi-tensor loop, bitwise PyTorch's per-tensor default
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config.lr,
        weight_decay=config.weight_decay,
        fused=True if fused else None,
        foreach=None if fused else True,
    )
    eval_time = [0.0]
    val_dev, test_dev = val_x.to(device), test_x.to(device)

    def nll_of(x: torch.Tensor) -> Callable[[torch.nn.Module], float]:
        def nll(m: torch.nn.Module) -> float:
            start = time.perf_counter()
            value = -mean_loglik(m, x)
            eval_time[0] += time.perf_counter() - start
            return value if math.isfinite(value) else math.inf

        return nll

    total, per_epoch = train_config.total_steps(len(train_x)), train_config.steps_per_epoch(len(train_x))
    official = config.variant == "official"
    mollifier = modes.mollifier(
        config.mode, total, config.seed, experiment="uci", step_quantum=per_epoch if official else 1
    )
    train_dev = train_x.to(device)
    epoch_end = (lambda epoch, m: recompute_batchnorm_statistics(m, train_dev)) if official else None
    row = {
        **{
            k: getattr(config, k)
            for k in ("dataset", "flow", "variant", "mode", "seed", "epochs", "hidden", "optimizer", "matmul")
        },
        "steps": total,
        "diverged_at": "",
        "arith": arithmetic.fingerprint(device),
    }
    start = time.perf_counter()
    try:
        # every epoch: the validation NLL (which picks the early-stopped model) and, for the learning curve only,
        # the test NLL
        with matmul_precision(config.matmul, device):  # the training steps' products; evaluation is always fp32
            result = train(
                model,
                train_x,
                train_config,
                mollifier=mollifier,
                optimizer=optimizer,
                metrics={"val_nll": nll_of(val_dev), "test_nll": nll_of(test_dev)},
                select_metric="val_nll",
                callback=callback,
                epoch_end=epoch_end,
            )
    except DivergenceError as err:  # reported in the row, never silently kept
        nan = math.nan
        row.update(
            test_loglik=nan,
            test_loglik_best_val=nan,
            best_epoch="",
            val_loglik=nan,
            val_loglik_best=nan,
            nonfinite_steps=err.count,
            diverged_at=err.step,
            train_seconds=time.perf_counter() - start,
            eval_seconds=eval_time[0],
        )
        return UCIResult(config, row, [], model.eval(), None, None)
    train_seconds = time.perf_counter() - start - eval_time[0]
    row["test_loglik"] = mean_loglik(model, test_dev)
    row["val_loglik"] = -result.final_metrics["val_nll"]
    best = _best_model(model, result.best_state)
    row["test_loglik_best_val"] = mean_loglik(best, test_dev) if best is not None else math.nan
    row["best_epoch"] = next((e["epoch"] for e in result.evals if e["step"] == result.best_step), "")
    row["val_loglik_best"] = -result.best_value
    row.update(
        nonfinite_steps=result.num_nonfinite, train_seconds=round(train_seconds, 3), eval_seconds=round(eval_time[0], 3)
    )
    losses = dict(zip(result.history["step"], result.history["loss"]))
    run_key = {k: getattr(config, k) for k in results.FILES[CURVES].key if k != "epoch"}
    curve = [
        {
            **run_key,
            "epoch": e["epoch"],
            "train_loss": losses.get(e["step"], math.nan),
            "val_loglik": -e["val_nll"],
            "test_loglik": -e["test_nll"],
        }
        for e in result.evals
    ]
    return UCIResult(config, row, curve, model.eval(), None if best is None else best.eval(), result)


def _best_model(model: torch.nn.Module, state: Optional[dict]) -> Optional[torch.nn.Module]:
    if state is None:
        return None
    best = copy.deepcopy(model)
    best.load_state_dict(state)
    return best


def grid(
    profile: Optional[str] = None,
    *,
    datasets: Sequence[str] = DATASETS,
    flows: Sequence[str] = FLOWS,
    modes: Sequence[str] = ("vanilla", "mollification"),
    seeds: Optional[Sequence[int]] = None,
    variants: Sequence[str] = ("official",),
    **fields: Any,
) -> list[UCIRun]:
    """All combinations of ``profile`` (:func:`from_profile`; seeds default to :data:`SEEDS`), seed-major (every
    configuration's first seed first), so a partial table is balanced."""
    seeds = SEEDS if seeds is None else seeds
    return [
        from_profile(profile, dataset=d, flow=f, mode=m, seed=s, variant=v, **fields)
        for v, s, d, f, m in itertools.product(variants, seeds, datasets, flows, modes)
    ]


def _worker(config: UCIRun, root) -> tuple[dict, list[dict]]:
    torch.set_num_threads(1)
    result = run(config, root=root, progress=False)
    return result.row, result.curve


def run_many(
    runs: Sequence[UCIRun],
    folder: Union[str, Path, None] = None,
    *,
    workers: Optional[int] = None,
    root: Union[str, Path, None] = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run the ``runs`` not yet in ``folder/uci.csv`` on ``workers`` processes (default: all cores, one
    torch thread each); append each row (with its provenance) and curve as soon as it finishes.

    The runs are de-duplicated first. A run that raises is reported (its key and error) and the others go
    on; once all have ended, :class:`~molli_utils.experiments.cli.RunsFailed` is raised if any failed (every
    finished run is stored by then). Ctrl-C (or SIGTERM under the command) terminates the workers; the
    finished runs stay stored and the same call resumes."""
    folder = results.results_dir(folder)
    out, curves = folder / RESULTS, folder / CURVES
    runs, todo = runner.pending(runs, out, key)  # a run given twice is trained once
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already in {out}; running {len(todo)}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    batch = runner.Batch(out, len(todo), key, log)

    def label(config: UCIRun) -> str:
        return f"{config.dataset}/{config.flow}/{config.mode}/seed {config.seed}"

    def done(i: int, config: UCIRun, value: tuple[dict, list[dict]]) -> None:
        row, curve = value
        batch.store(
            i,
            row,
            f"{label(config)}: test LL {row['test_loglik']:.3f} (best-val epoch {row['best_epoch']}: "
            f"{row['test_loglik_best_val']:.3f}), {row['train_seconds']:.0f} s",
            (curves, curve),
        )

    runner.in_pool(
        _worker, todo, (root,), workers, done, lambda i, config, err: batch.fail(i, config, err, label(config))
    )
    log(f"{len(todo)} runs in {batch.elapsed():.0f} s wall on {workers} processes")
    return batch.finish()
