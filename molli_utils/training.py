"""One training loop for every chapter: mini-batches, mollification, metrics, checkpoints.

:func:`train` fits any ``torch.nn.Module`` by minimising ``loss_fn(model, x)``
(default: ``model.forward_kld(x)``, the mean negative log-likelihood of a
normflows model) on shuffled mini-batches of a data tensor, with the paper's
one line applied to every batch::

    x = mollifier(x, step)        # step = 0, 1, 2, ... (global, 0-based)

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
* Checkpoints (``checkpoint_dir``): one file, ``checkpoint.pt``, written
  atomically every ``checkpoint_every`` steps and at the end. A new call with
  the same folder resumes from it (restoring the global torch RNG state too),
  and ends bitwise identical to an uninterrupted run on the CPU. Nothing is
  saved when training is interrupted (the state may be mid-update).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

__all__ = ["TrainConfig", "TrainResult", "DivergenceError", "train", "nll_loss", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
LossFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.nn.Module], float]
#: Config fields that do not change the trained parameters: left out of the checkpoint's fingerprint.
_RUN_ONLY = ("progress", "desc", "checkpoint_dir", "checkpoint_every", "device")


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm progress bar: a widget in Jupyter when ipywidgets is installed, else a text bar.

    ``tqdm.auto`` warns ("IProgress not found") when it falls back to text in a
    notebook; that warning would land in every chapter's output, so it is silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

        return tqdm(**kwargs)


class DivergenceError(RuntimeError):
    """Too many non-finite (nan/inf) losses or gradient norms in a row; ``step`` is 0-based."""

    def __init__(self, step: int, count: int, total: int, lr: float) -> None:
        self.step, self.count = step, count
        super().__init__(
            f"training diverged: {count} non-finite losses or gradient norms in a row "
            f"(steps {step - count + 1}..{step}, 0-based; {total} skipped in all). Try a lower "
            f"learning rate (lr={lr:g}), gradient clipping (TrainConfig(grad_clip=1.0)), or "
            "data mollification (Mollifier('gaussian', horizon=...))."
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one run; exactly one of ``steps`` and ``epochs`` must be given.

    ``eval_every`` (steps) sets how often ``metrics`` run; 0 means at each
    epoch end when training by ``epochs``, else only at the end (metrics always
    run at the end). ``log_every`` thins the loss history (mean loss over each
    window of that many steps); ``None`` picks it so the history holds at most
    about 1000 points. ``grad_clip`` clips the gradient's global 2-norm.
    """

    batch_size: int
    lr: float
    steps: Optional[int] = None
    epochs: Optional[int] = None
    seed: int = 0
    drop_last: bool = True
    eval_every: int = 0
    log_every: Optional[int] = None
    grad_clip: Optional[float] = None
    max_nonfinite_in_row: int = 20
    checkpoint_dir: Union[str, Path, None] = None
    checkpoint_every: int = 0
    progress: bool = True
    desc: str = "training"
    device: Union[str, torch.device] = "cpu"

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of steps and epochs, got steps={self.steps}, epochs={self.epochs}")
        lr, clip = self.lr, self.grad_clip
        checks = [  # (field, valid?, what it must be)
            ("steps", self.steps is None or _int_at_least(self.steps, 1), "a positive integer"),
            ("epochs", self.epochs is None or _int_at_least(self.epochs, 1), "a positive integer"),
            ("batch_size", _int_at_least(self.batch_size, 1), "a positive integer"),
            ("lr", _number(lr) and 0 < lr < math.inf, "a positive finite number"),
            ("seed", _int_at_least(self.seed, 0), "an integer >= 0"),
            ("eval_every", _int_at_least(self.eval_every, 0), "an integer >= 0 (0 = off)"),
            ("checkpoint_every", _int_at_least(self.checkpoint_every, 0), "an integer >= 0 (0 = off)"),
            ("log_every", self.log_every is None or _int_at_least(self.log_every, 1), "a positive integer or None"),
            ("grad_clip", clip is None or (_number(clip) and 0 < clip < math.inf), "a positive number or None"),
            ("max_nonfinite_in_row", _int_at_least(self.max_nonfinite_in_row, 1), "a positive integer"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs a checkpoint_dir to write to")

    def steps_per_epoch(self, num_examples: int) -> int:
        """Batches per pass over ``num_examples`` examples (the last partial one counts unless ``drop_last``)."""
        full, rest = divmod(num_examples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def total_steps(self, num_examples: int) -> int:
        """Number of steps of the run, e.g. the horizon of a mollifier that spans all of training."""
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(num_examples)


def nll_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Default loss: ``model.forward_kld(x)``, a normflows model's mean negative log-likelihood."""
    return model.forward_kld(x)


@dataclass
class TrainResult:
    """What a run returns; plain lists and dicts (``to_frame`` makes pandas tables).

    ``history`` has equal-length lists ``step``, ``loss`` (mean of the finite
    losses over the window ending at ``step``; nan if all were skipped),
    ``noise_level`` (the mollifier's, at the window's last batch) and
    ``skipped`` (non-finite steps in the window). ``evals`` holds one dict per
    metric evaluation: ``step``, ``epoch`` and one value per metric. ``best_*``
    refer to ``best_metric`` (lower is better); ``best_state`` is a CPU copy
    of the model's state dict at ``best_step``.
    """

    history: dict[str, list]
    evals: list[dict[str, float]]
    final_step: int
    num_nonfinite: int
    elapsed: float
    best_metric: Optional[str] = None
    best_value: float = math.inf
    best_step: Optional[int] = None
    best_state: Optional[dict[str, torch.Tensor]] = None
    resumed_from: Optional[int] = None

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics at the end of training (empty without metrics)."""
        return dict(self.evals[-1]) if self.evals else {}

    def to_frame(self, which: str = "loss") -> Any:
        """``which='loss'``: the loss history; ``'evals'``: the metric evaluations, as a pandas DataFrame."""
        import pandas as pd

        if which not in ("loss", "evals"):
            raise ValueError(f"which must be 'loss' or 'evals', got {which!r}")
        return pd.DataFrame(self.history) if which == "loss" else pd.DataFrame(self.evals)


@dataclass
class _LoopState:
    """Everything that changes during a run and goes into a checkpoint (besides model and RNGs)."""

    step: int = 0
    nonfinite: int = 0
    in_row: int = 0
    win_sum: float = 0.0
    win_n: int = 0
    win_skipped: int = 0
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": [], "noise_level": [], "skipped": []})
    evals: list = field(default_factory=list)
    best_value: float = math.inf
    best_step: Optional[int] = None
    best_state: Optional[dict] = None
    elapsed: float = 0.0


class _Batches:
    """Epoch-wise shuffled mini-batches of ``data``; resumable at any step."""

    def __init__(self, data: torch.Tensor, config: TrainConfig) -> None:
        self.data, self.size = data, config.batch_size
        self.per_epoch = config.steps_per_epoch(len(data))
        self.gen = torch.Generator().manual_seed(config.seed)
        self.epoch_start = self.gen.get_state()
        self.perm: Optional[torch.Tensor] = None

    def __call__(self, step: int) -> torch.Tensor:
        """The batch of 0-based ``step``."""
        pos = step % self.per_epoch
        if pos == 0 or self.perm is None:
            if pos == 0:
                self.epoch_start = self.gen.get_state()
            else:  # resumed mid-epoch: redraw this epoch's permutation
                self.gen.set_state(self.epoch_start)
            self.perm = torch.randperm(len(self.data), generator=self.gen).to(self.data.device)
        return self.data[self.perm[pos * self.size : (pos + 1) * self.size]]

    def state_dict(self) -> dict:
        """Generator states at the start of this epoch and now (the permutation is redrawn from them)."""
        return {"epoch_start": self.epoch_start, "now": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_start, self.perm = state["epoch_start"], None
        self.gen.set_state(state["now"])


def _check_data(data: Any, config: TrainConfig) -> None:
    """Raise a ValueError that says what is wrong with ``data`` (a float tensor [N, ...], N >= batch_size)."""
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"data must be a torch.Tensor [N, ...], got {type(data).__name__}; use torch.as_tensor")
    if data.ndim < 2:
        raise ValueError(
            f"data must have shape [N, ...] with at least 2 dims, got shape {tuple(data.shape)}; "
            "for 1-D data use data.unsqueeze(1)"
        )
    if not data.is_floating_point():
        raise ValueError(f"data must be floating point, got dtype {data.dtype}; convert it, e.g. data.float()")
    if config.batch_size > len(data):
        raise ValueError(f"batch_size={config.batch_size} is larger than the data ({len(data)} examples)")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contains non-finite values (nan or inf); clean them before training")


def _plain(value: Any) -> Any:
    """``value`` as plain, comparable Python data (for fingerprints)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__qualname__", type(value).__name__)


def _fingerprint(config: TrainConfig, data: torch.Tensor, model: torch.nn.Module, mollifier: Any, optimizer) -> dict:
    """What must not change between a checkpoint and the run resuming from it (flat, plain data)."""
    fp = {f"config.{f.name}": _plain(getattr(config, f.name)) for f in fields(config) if f.name not in _RUN_ONLY}
    fp["data"] = [list(data.shape), str(data.dtype), f"sum={float(data.double().sum()):.9g}"]
    fp["model"] = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    fp["optimizer"] = [type(optimizer).__name__, _plain(optimizer.defaults)]
    fp["mollifier"] = None if mollifier is None else type(mollifier).__name__
    fp["mollifier.generator"] = isinstance(getattr(mollifier, "generator", None), torch.Generator)
    for name in ("kind", "horizon", "schedule", "schedule_kwargs"):
        if hasattr(mollifier, name):
            fp[f"mollifier.{name}"] = _plain(getattr(mollifier, name))
    return fp


def _save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _grad_check(params: list[torch.nn.Parameter], grad_clip: Optional[float]) -> torch.Tensor:
    """A number that is finite iff all gradients are (clipping them to global norm ``grad_clip`` first, if given).

    With clipping: the global 2-norm. Without: the sum of all gradient entries
    on the CPU (one ``cat``: 3x cheaper than a norm over many small tensors),
    the global 2-norm (fused kernels) elsewhere.
    """
    params = [p for p in params if p.grad is not None]
    if grad_clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not params:
        return torch.zeros(())
    if params[0].device.type != "cpu" and hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm([p.grad for p in params])
    return torch.cat([p.grad.reshape(-1) for p in params]).sum()


def train(
    model: torch.nn.Module,
    data: torch.Tensor,
    config: TrainConfig,
    *,
    mollifier: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
    loss_fn: Optional[LossFn] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    metrics: Optional[dict[str, Metric]] = None,
    select_metric: Optional[str] = None,
    callback: Optional[Callable[[int, torch.nn.Module], None]] = None,
) -> TrainResult:
    """Train ``model`` on ``data`` (shape ``[N, ...]``) and return a :class:`TrainResult`.

    ``mollifier`` (``None`` = vanilla) maps each batch: ``x = mollifier(x, step)``.
    ``optimizer`` defaults to ``Adam(model.parameters(), lr=config.lr)``.
    ``metrics`` maps names to ``fn(model) -> float``; ``select_metric`` (default:
    the first metric) is the one whose lowest value picks ``best_state``.
    ``callback(steps_done, model)`` runs after every step; it may raise to stop.
    The model and data are moved to ``config.device``; the model is trained in place.
    """
    _check_data(data, config)
    metrics = dict(metrics or {})
    if any(not callable(fn) for fn in metrics.values()):
        raise ValueError("metrics must map names to callables fn(model) -> float")
    select_metric = select_metric or next(iter(metrics), None)
    if select_metric is not None and select_metric not in metrics:
        raise ValueError(f"select_metric={select_metric!r} is not one of the metrics {list(metrics)}")
    if loss_fn is None and not callable(getattr(model, "forward_kld", None)):
        raise ValueError(f"{type(model).__name__} has no forward_kld(x); pass loss_fn=lambda model, x: ...")
    device = torch.device(config.device)
    model.to(device).train()
    data = data.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=config.lr)
    ckpt = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir is not None else None
    loop = _Loop(model, config, mollifier, loss_fn or nll_loss, optimizer, metrics, select_metric, device,
                 _Batches(data, config), ckpt, _fingerprint(config, data, model, mollifier, optimizer))  # fmt: skip
    resuming = ckpt is not None and ckpt.exists()
    state = loop.resume() if resuming else _LoopState()
    resumed_from = state.step if resuming else None
    loop.run(state, config.total_steps(len(data)), callback)
    return TrainResult(
        history=state.history, evals=state.evals, final_step=state.step, num_nonfinite=state.nonfinite,
        elapsed=state.elapsed, best_metric=select_metric, best_value=state.best_value,
        best_step=state.best_step, best_state=state.best_state, resumed_from=resumed_from,
    )  # fmt: skip


@dataclass
class _Loop:
    """The step loop proper, with what stays fixed during a run."""

    model: torch.nn.Module
    config: TrainConfig
    mollifier: Any
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    metrics: dict[str, Metric]
    select: Optional[str]
    device: torch.device
    batches: _Batches
    ckpt: Optional[Path]
    fingerprint: dict

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def run(self, state: _LoopState, total: int, callback) -> None:
        """Step until ``total`` steps are done, logging, evaluating and saving on the way."""
        cfg, per_epoch = self.config, self.batches.per_epoch
        log_every = cfg.log_every or max(1, math.ceil(total / 1000))
        eval_every = cfg.eval_every or (per_epoch if cfg.epochs is not None else 0)
        start = time.perf_counter() - state.elapsed
        bar = progress_bar(total=total, initial=state.step, desc=cfg.desc, disable=not cfg.progress, dynamic_ncols=True)
        try:
            while state.step < total:
                self._step(state)
                done = state.step
                if done % log_every == 0 or done == total:
                    self._log(state, bar)
                if self.metrics and ((eval_every and done % eval_every == 0) or done == total):
                    self._eval(state, done // per_epoch)
                state.elapsed = time.perf_counter() - start
                if self.ckpt and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total):
                    self._save(state)
                if callback is not None:
                    callback(done, self.model)
        finally:
            bar.close()

    def _step(self, state: _LoopState) -> None:
        """One step: batch, mollify, loss, backward, and an update unless the loss or gradient is non-finite."""
        x = self.batches(state.step)
        if self.mollifier is not None:
            x = self.mollifier(x, state.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model, x)
        loss.backward()
        grad_check = _grad_check(self.params, self.config.grad_clip)
        loss_value = loss.item()  # waits for the step: the gradient check is then ready too
        if math.isfinite(loss_value) and math.isfinite(grad_check.item()):
            self.optimizer.step()
            state.in_row, state.win_sum, state.win_n = 0, state.win_sum + loss_value, state.win_n + 1
        else:
            state.nonfinite += 1
            state.in_row += 1
            state.win_skipped += 1
            if state.in_row >= self.config.max_nonfinite_in_row:
                raise DivergenceError(state.step, state.in_row, state.nonfinite, self.config.lr)
        state.step += 1

    def _log(self, state: _LoopState, bar) -> None:
        """Close the loss window: append its mean to the history and refresh the progress bar."""
        loss = state.win_sum / state.win_n if state.win_n else math.nan
        noise = _noise_level(self.mollifier, state.step - 1)
        for key, value in zip(("step", "loss", "noise_level", "skipped"), (state.step, loss, noise, state.win_skipped)):
            state.history[key].append(value)
        state.win_sum, state.win_n, state.win_skipped = 0.0, 0, 0
        if not bar.disable:
            bar.set_postfix(loss=f"{loss:.4g}", noise=f"{noise:.3g}", skipped=state.nonfinite, refresh=False)
            bar.update(state.step - bar.n)

    def _eval(self, state: _LoopState, epoch: int) -> None:
        """Evaluate the metrics; keep a CPU copy of the state dict if ``select`` improved."""
        values = _evaluate(self.model, self.metrics, self.device)
        state.evals.append({"step": state.step, "epoch": epoch, **values})
        value = values[self.select]
        if math.isfinite(value) and value < state.best_value:
            state.best_value, state.best_step = value, state.step
            state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def _save(self, state: _LoopState) -> None:
        """Write model, optimizer, every RNG state and the loop state to ``self.ckpt``, atomically."""
        gen, cuda = getattr(self.mollifier, "generator", None), self.device.type == "cuda"
        rng = {
            "data": self.batches.state_dict(),
            "mollifier": gen.get_state() if isinstance(gen, torch.Generator) else None,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
        }
        loop = {f.name: getattr(state, f.name) for f in fields(state)}
        obj = {"format": 1, "fingerprint": self.fingerprint, "model": self.model.state_dict(),
               "optimizer": self.optimizer.state_dict(), "rng": rng, "loop": loop}  # fmt: skip
        _save_atomic(obj, self.ckpt)

    def resume(self) -> _LoopState:
        """Load ``self.ckpt`` into model, optimizer and RNGs (refusing another config); return its loop state."""
        ckpt = torch.load(self.ckpt, map_location="cpu", weights_only=True)
        saved, now = ckpt["fingerprint"], self.fingerprint
        diffs = [f"{k}: {saved.get(k)!r} (checkpoint) != {now.get(k)!r} (now)"
                 for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]  # fmt: skip
        if diffs:
            raise ValueError(
                f"cannot resume from {self.ckpt}: it was made with a different configuration ({'; '.join(diffs)}). "
                "Use another checkpoint_dir, or delete the checkpoint to start afresh."
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"]
        self.batches.load_state_dict(rng["data"])
        if rng["mollifier"] is not None:
            self.mollifier.generator.set_state(rng["mollifier"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        return _LoopState(**ckpt["loop"])
