"""One training loop for every chapter: mini-batches, mollification, metrics, checkpoints.

:func:`train` fits any ``torch.nn.Module`` by minimising ``loss_fn(model, x)``
(default: ``model.forward_kld(x)``, the mean negative log-likelihood of a
normflows model) on shuffled mini-batches of a data tensor, with the paper's
one line applied to every batch::

    x = mollifier(x, step)        # step = 0, 1, 2, ... (global, 0-based)

A model that needs its data transformed around that line (the image flows: to the flow's space before it,
dequantisation noise after it) gives a ``prepare`` hook, ``x = prepare.after(mollifier(prepare.before(x),
step), step)`` (:class:`~molli_utils.training.batch.FlowBatches`).

Conventions
-----------
* Steps: the mollifier sees the 0-based index of the batch. Every recorded
  ``step`` (loss history, metrics, best step, checkpoints, ``final_step``)
  counts the steps *done*: the entry made after the first batch has ``step=1``.
* Batches: each epoch is a fresh random permutation of the data drawn from a
  ``torch.Generator`` seeded with ``config.seed``. With ``drop_last=True`` (the
  default) the last partial batch of each epoch is dropped, so every step sees
  ``batch_size`` examples; the dropped examples differ from epoch to epoch.
* Non-finite steps: a step whose loss or gradient norm is nan/inf makes no
  optimizer update, but still counts as a step (the schedule goes on).
  ``max_nonfinite_in_row`` such steps in a row raise :class:`DivergenceError`.
* Metrics run in eval mode under ``torch.no_grad`` and inside
  ``torch.random.fork_rng``, so they never change training (not even the
  global random state); the model is back in train mode afterwards.
* Checkpoints (``checkpoint_dir``): one file, ``checkpoint.pt``, in the book's
  one checkpoint format (:mod:`molli_utils.checkpoints`: atomic, SHA-256 checked,
  weights only), written every ``checkpoint_every`` steps and at the end. A new
  call with the same folder resumes from it (restoring the global torch RNG state
  and the mollifiers' generators too), and ends bitwise identical to an
  uninterrupted run on the CPU. Nothing is saved when training is interrupted
  (the state may be mid-update); a damaged checkpoint or one of another
  configuration is refused with an error that says what to do. State that lives outside
  the model (e.g. a tracker that a per-step hook updates) goes into the same file with
  ``extra_state``, so the two never disagree.
* Mollifiers follow :class:`~molli_utils.mollifiers.MollifierLike`; ``None``
  means vanilla training (as ``Mollifier("none")``), and a plain callable
  ``f(x, step)`` is accepted as a mollifier without noise level or state.
* Ensembles: ``data`` may be a list of M data sets, one per member of a model
  whose parameters are all stacked along dim 0 (e.g. a
  :class:`~molli_utils.models.FlowEnsemble`). Member ``m`` then gets its own
  batches (seed ``config.seed[m]``, or the one seed for all) and its own
  mollifier (``mollifier`` may be a list), the batches are stacked into
  ``[M, B, ...]`` and ``loss_fn`` must return one loss per member, ``[M]``.
  Their sum is backpropagated; a member whose loss or gradient slice is
  non-finite skips the step (its parameters and per-element optimizer state
  are put back, see :func:`~molli_utils.training.ensemble.step_except`), and after ``max_nonfinite_in_row``
  in a row it is frozen (``diverged_at``) while the others go on;
  :class:`DivergenceError` is raised once every member is frozen. A single
  model is the one-member case of these rules.

The loop's parts: :mod:`.config` (:class:`TrainConfig`, :class:`TrainResult`,
:class:`DivergenceError`), :mod:`.shuffle` (the batches), :mod:`.ensemble` (the per-member
plumbing: stacked batches, per-member finiteness, skipped updates) and :mod:`.resume`
(checkpoints, fingerprints, the loop's state).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch

from ..runtime import check_device
from .config import DivergenceError, LossFn, Metric, TrainConfig, TrainResult, nll_loss
from .ensemble import Members, per_member
from .resume import CHECKPOINT_NAME, Checkpoint, LoopState
from .shuffle import EpochBatches

__all__ = ["TrainConfig", "TrainResult", "DivergenceError", "train", "nll_loss", "show_progress", "CHECKPOINT_NAME"]


def show_progress(env: str = "MOLLI_PROGRESS") -> bool:
    """Whether training shows progress bars when a run does not say: ``$MOLLI_PROGRESS`` (``0`` hides them; the
    book's build sets it, so that built pages carry no bars), else yes."""
    return os.environ.get(env, "1").strip().lower() not in ("0", "false", "no", "off")


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm progress bar: a widget in Jupyter when ipywidgets is installed, else a text bar.

    ``tqdm.auto`` warns ("IProgress not found") when it falls back to text in a
    notebook; that warning would land in every chapter's output, so it is silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

        return tqdm(**kwargs)


def train(
    model: torch.nn.Module,
    data: Union[torch.Tensor, list[torch.Tensor]],
    config: TrainConfig,
    *,
    mollifier: Union[Callable[[torch.Tensor, int], torch.Tensor], list, None] = None,
    prepare: Optional[Any] = None,
    loss_fn: Optional[LossFn] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    metrics: Optional[dict[str, Metric]] = None,
    select_metric: Optional[str] = None,
    callback: Optional[Callable[[int, torch.nn.Module], None]] = None,
    epoch_end: Optional[Callable[[int, torch.nn.Module], None]] = None,
    step_end: Optional[Callable[[int, torch.nn.Module], None]] = None,
    extra_state: Optional[dict[str, Any]] = None,
) -> TrainResult:
    """Train ``model`` on ``data`` (shape ``[N, ...]``) and return a :class:`TrainResult`.

    ``mollifier`` (``None`` = vanilla) maps each batch: ``x = mollifier(x, step)``. ``prepare`` (optional) has
    ``before(x)`` and ``after(x, step)``, applied before and after the mollifier; its ``state_dict()`` (if it
    has one) is saved in the checkpoints with ``extra_state``'s, under the name ``"prepare"``.
    ``optimizer`` defaults to ``Adam(model.parameters(), lr=config.lr, foreach=True)``: PyTorch's
    multi-tensor Adam, the same arithmetic as its per-tensor default on the CPU (bitwise equal
    parameters; tested), with one call per operation for all tensors instead of one per tensor.
    ``metrics`` maps names to ``fn(model) -> float``; ``select_metric`` (default:
    the first metric) is the one whose lowest value picks ``best_state``.
    ``callback(steps_done, model)`` runs after every step; it may raise to stop.
    ``epoch_end(epoch, model)`` runs after the last step of every epoch (``epoch`` = 1, 2, ...),
    before the metrics and the checkpoint: part of training (e.g. the official UCI code's
    recomputation of the batch-norm statistics), so it must not touch the global RNG.
    ``step_end(steps_done, model)`` runs after every step, after ``epoch_end`` and before the metrics
    and the checkpoint: part of the run (e.g. a validation tracker), so it must not touch the global RNG
    either. ``extra_state`` maps names to objects with ``state_dict()`` / ``load_state_dict(state)`` (and
    optionally ``fingerprint()``, plain data that a resumed run must match): their state, e.g. what
    ``step_end`` accumulates, is saved in every checkpoint and restored on resume, with the model's.
    The model and data are moved to ``config.device``; the model is trained in place.

    Ensembles (see the module's notes): ``data`` a list of M data sets, ``mollifier``
    one or a list of M (``None`` entries: vanilla), ``config.seed`` one or a tuple of M,
    ``loss_fn`` returning ``[M]`` (the default, ``model.forward_kld(x)``, does for a
    :class:`~molli_utils.models.FlowEnsemble`).
    """
    datasets, seeds, mollifiers, count = per_member(data, config, mollifier)
    metrics = dict(metrics or {})
    if any(not callable(fn) for fn in metrics.values()):
        raise ValueError("metrics must map names to callables fn(model) -> float")
    select_metric = select_metric or next(iter(metrics), None)
    if select_metric is not None and select_metric not in metrics:
        raise ValueError(f"select_metric={select_metric!r} is not one of the metrics {list(metrics)}")
    extra_state = dict(extra_state or {})
    if prepare is not None:
        if not (callable(getattr(prepare, "before", None)) and callable(getattr(prepare, "after", None))):
            raise ValueError(f"prepare must have before(x) and after(x, step), got {type(prepare).__name__}")
        if "prepare" in extra_state:
            raise ValueError("extra_state['prepare'] is taken by the prepare hook's state: use another name")
        if callable(getattr(prepare, "state_dict", None)):
            extra_state["prepare"] = prepare
    for name, obj in extra_state.items():
        if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
            raise ValueError(
                f"extra_state[{name!r}] must have state_dict() and load_state_dict(state), got {type(obj).__name__}"
            )
    if loss_fn is None and not callable(getattr(model, "forward_kld", None)):
        raise ValueError(f"{type(model).__name__} has no forward_kld(x); pass loss_fn=lambda model, x: ...")
    device = check_device(config.device)  # a device this machine lacks: refused before any work, with the fix
    model.to(device).train()
    streams = [EpochBatches(d.to(device), config, s) for d, s in zip(datasets, seeds)]
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    members = Members(count, [p for p in model.parameters() if p.requires_grad], config.grad_clip)
    checkpoint = Checkpoint.of_run(config, model, optimizer, streams, mollifiers, members, device, extra_state)
    loop = _Loop(
        model,
        config,
        mollifiers,
        prepare or _Unchanged(),
        members,
        loss_fn or nll_loss,
        optimizer,
        metrics,
        select_metric,
        device,
        streams,
        checkpoint,
        epoch_end,
        step_end,
    )
    resuming = checkpoint is not None and checkpoint.path.exists()
    state = checkpoint.load() if resuming else LoopState.fresh(len(streams))
    resumed_from = state.step if resuming else None
    loop.run(state, config.total_steps(len(datasets[0])), callback)
    return TrainResult(
        history=state.history,
        evals=state.evals,
        final_step=state.step,
        num_nonfinite=sum(state.nonfinite),
        elapsed=state.elapsed,
        best_metric=select_metric,
        best_value=state.best_value,
        best_step=state.best_step,
        best_state=state.best_state,
        resumed_from=resumed_from,
        member_nonfinite=state.nonfinite if count else None,
        diverged_at=state.diverged_at if count else None,
    )


def _vanilla(x: torch.Tensor, step: int) -> torch.Tensor:
    """No mollifier: the batch as it is."""
    return x


class _Unchanged:
    """No ``prepare`` hook: the batch as it is, before and after the mollifier."""

    def before(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def after(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return x


def _noise_level(mollifier: Any, step: int) -> float:
    """The mollifier's noise level at 0-based ``step`` (0 without mollifier, nan if it has no ``noise_level``)."""
    if mollifier is None:
        return 0.0
    level = getattr(mollifier, "noise_level", None)
    return float(level(step)) if callable(level) else math.nan


def _evaluate(model: torch.nn.Module, metrics: dict[str, Metric], device: torch.device) -> dict[str, float]:
    """Run every metric in eval mode, without gradients, without touching the global RNG state."""
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return {name: float(fn(model)) for name, fn in metrics.items()}
    finally:
        model.train()


def _mean(values: list[float]) -> float:
    """The mean of the non-nan ``values`` (nan if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@dataclass
class _Loop:
    """The step loop proper, with what stays fixed during a run.

    Per-member things (``mollifiers``, ``streams``) are lists with one entry per member (one for a
    single model); ``members`` does what differs between one model and an ensemble.
    """

    model: torch.nn.Module
    config: TrainConfig
    mollifiers: list
    prepare: Any
    members: Members
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    metrics: dict[str, Metric]
    select: Optional[str]
    device: torch.device
    streams: list[EpochBatches]
    checkpoint: Optional[Checkpoint]
    epoch_end: Optional[Callable[[int, torch.nn.Module], None]] = None
    step_end: Optional[Callable[[int, torch.nn.Module], None]] = None

    def __post_init__(self) -> None:
        self.per_epoch = self.streams[0].per_epoch
        self.mollify = [_vanilla if f is None else f for f in self.mollifiers]

    def step(self, state: LoopState) -> None:
        """One step: batch, mollify, loss, backward, and an update unless the loss or gradient is non-finite."""
        step, xs = state.step, []
        for batch, mollify in zip(self.streams, self.mollify):  # one stream per member (one for a single model)
            x = self.prepare.before(batch(step))  # the data in the model's space (usually unchanged)
            x = mollify(x, step)  # the paper's one line: x = mollifier(x, step)
            xs.append(self.prepare.after(x, step))  # e.g. the image flows' dequantisation noise
        x = self.members.stack(xs)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model, x)
        values, finite = self.members.backward(loss)  # per member: the loss, and whether it and its gradient are finite
        self.members.update(self.optimizer, finite, state.diverged_at)  # optimizer.step(), for the finite ones only
        self._count(state, values, finite)
        state.step += 1

    def run(self, state: LoopState, total: int, callback) -> None:
        """Step until ``total`` steps are done, logging, evaluating and saving on the way."""
        cfg, per_epoch = self.config, self.per_epoch
        log_every = cfg.log_every or max(1, math.ceil(total / 1000))
        eval_every = cfg.eval_every or (per_epoch if cfg.epochs is not None else 0)
        start = time.perf_counter() - state.elapsed
        shown = show_progress() if cfg.progress is None else cfg.progress
        bar = progress_bar(total=total, initial=state.step, desc=cfg.desc, disable=not shown, dynamic_ncols=True)
        try:
            while state.step < total:
                self.step(state)
                done = state.step
                if self.epoch_end is not None and done % per_epoch == 0:
                    self.epoch_end(done // per_epoch, self.model)
                if self.step_end is not None:
                    self.step_end(done, self.model)
                if done % log_every == 0 or done == total:
                    self._log(state, bar)
                if self.metrics and ((eval_every and done % eval_every == 0) or done == total):
                    self._eval(state, done // per_epoch)
                state.elapsed = time.perf_counter() - start
                if self.checkpoint and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total):
                    self.checkpoint.save(state)
                if callback is not None:
                    callback(done, self.model)
        finally:
            bar.close()

    def _count(self, state: LoopState, values: list[float], finite: list[bool]) -> None:
        """Per member not frozen: add a finite loss to the window, or count a non-finite step and freeze the
        member after ``max_nonfinite_in_row`` in a row. Raise :class:`DivergenceError` once all are frozen."""
        limit = self.config.max_nonfinite_in_row
        for i, (value, ok) in enumerate(zip(values, finite)):
            if state.diverged_at[i] is not None:
                continue
            if ok:
                state.in_row[i], state.win_sum[i], state.win_n[i] = 0, state.win_sum[i] + value, state.win_n[i] + 1
            else:
                state.nonfinite[i] += 1
                state.in_row[i] += 1
                state.win_skipped[i] += 1
                if state.in_row[i] >= limit:
                    state.diverged_at[i] = state.step
        if all(d is not None for d in state.diverged_at):
            raise DivergenceError(state.step, limit, sum(state.nonfinite), self.config.lr, self.members.count)

    def _log(self, state: LoopState, bar) -> None:
        """Close the loss windows: append their means to the history and refresh the progress bar."""
        losses = [s / n if n else math.nan for s, n in zip(state.win_sum, state.win_n)]
        noise = [_noise_level(f, state.step - 1) for f in self.mollifiers]
        entry = (state.step, self.members.one(losses), self.members.one(noise), self.members.one(state.win_skipped))
        for key, value in zip(("step", "loss", "noise_level", "skipped"), entry):
            state.history[key].append(value)
        m = len(losses)
        state.win_sum, state.win_n, state.win_skipped = [0.0] * m, [0] * m, [0] * m
        if not bar.disable:
            frozen = {"frozen": sum(d is not None for d in state.diverged_at)} if self.members.count else {}
            bar.set_postfix(
                loss=f"{_mean(losses):.4g}",
                noise=f"{_mean(noise):.3g}",
                skipped=sum(state.nonfinite),
                **frozen,
                refresh=False,
            )
            bar.update(state.step - bar.n)

    def _eval(self, state: LoopState, epoch: int) -> None:
        """Evaluate the metrics; keep a CPU copy of the state dict if ``select`` improved."""
        values = _evaluate(self.model, self.metrics, self.device)
        state.evals.append({"step": state.step, "epoch": epoch, **values})
        value = values[self.select]
        if math.isfinite(value) and value < state.best_value:
            state.best_value, state.best_step = value, state.step
            state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
