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
  are put back, see :func:`_step_except`), and after ``max_nonfinite_in_row``
  in a row it is frozen (``diverged_at``) while the others go on;
  :class:`DivergenceError` is raised once every member is frozen. A single
  model is the one-member case of these rules.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from .. import checkpoints
from ..runtime import check_device

__all__ = ["TrainConfig", "TrainResult", "DivergenceError", "train", "nll_loss", "show_progress", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
LossFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.nn.Module], float]
#: Config fields that do not change the trained parameters: left out of the checkpoint's fingerprint.
_RUN_ONLY = ("progress", "desc", "checkpoint_dir", "checkpoint_every", "device")


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


class DivergenceError(RuntimeError):
    """Too many non-finite (nan/inf) losses or gradient norms in a row (for an ensemble: for
    every member, the last of them at ``step``); ``step`` is 0-based."""

    def __init__(self, step: int, count: int, total: int, lr: float, members: Optional[int] = None) -> None:
        self.step, self.count = step, count
        every = f"every member of the ensemble ({members}) froze after " if members else ""
        super().__init__(
            f"training diverged: {every}{count} non-finite losses or gradient norms in a row "
            f"(steps {step - count + 1}..{step}, 0-based; {total} skipped in all). Try a lower "
            f"learning rate (lr={lr:g}), gradient clipping (TrainConfig(grad_clip=1.0)), or "
            "data mollification (Mollifier('gaussian', horizon=...))."
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _seed_ok(value: Any) -> bool:
    """An integer >= 0, or a non-empty tuple or list of them (one per ensemble member)."""
    if isinstance(value, (tuple, list)):
        return len(value) > 0 and all(_int_at_least(v, 0) for v in value)
    return _int_at_least(value, 0)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one run; exactly one of ``steps`` and ``epochs`` must be given.

    ``eval_every`` (steps) sets how often ``metrics`` run; 0 means at each
    epoch end when training by ``epochs``, else only at the end (metrics always
    run at the end). ``log_every`` thins the loss history (mean loss over each
    window of that many steps); ``None`` picks it so the history holds at most
    about 1000 points. ``grad_clip`` clips the gradient's global 2-norm (for an
    ensemble: each member's). ``seed`` orders the batches; for an ensemble it
    may be a tuple with one seed per member. ``progress``: show a progress bar
    (``None``: unless ``$MOLLI_PROGRESS=0``, see :func:`show_progress`).
    """

    batch_size: int
    lr: float
    steps: Optional[int] = None
    epochs: Optional[int] = None
    seed: Union[int, tuple[int, ...]] = 0
    drop_last: bool = True
    eval_every: int = 0
    log_every: Optional[int] = None
    grad_clip: Optional[float] = None
    max_nonfinite_in_row: int = 20
    checkpoint_dir: Union[str, Path, None] = None
    checkpoint_every: int = 0
    progress: Optional[bool] = None
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
            ("seed", _seed_ok(self.seed), "an integer >= 0 (or a tuple of them, one per ensemble member)"),
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

    Ensemble runs (``data`` a list, ``M`` members): ``loss``, ``noise_level``
    and ``skipped`` hold one list of M values per log point (a frozen member's
    loss is nan); ``num_nonfinite`` is the total over members,
    ``member_nonfinite`` the count per member (non-finite steps before it was
    frozen) and ``diverged_at`` the 0-based step at which each member was
    frozen (``None`` if never). Both are ``None`` for a single model.
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
    member_nonfinite: Optional[list[int]] = None
    diverged_at: Optional[list[Optional[int]]] = None

    @property
    def member_losses(self) -> torch.Tensor:
        """The loss history as a float64 tensor ``[L, M]`` (``M = 1`` for a single model)."""
        return torch.tensor(self.history["loss"], dtype=torch.float64).reshape(len(self.history["step"]), -1)

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics at the end of training (empty without metrics)."""
        return dict(self.evals[-1]) if self.evals else {}

    def to_frame(self, which: str = "loss") -> Any:
        """``which='loss'``: the loss history; ``'evals'``: the metric evaluations, as a pandas DataFrame."""
        import pandas as pd

        if which not in ("loss", "evals"):
            raise ValueError(f"which must be 'loss' or 'evals', got {which!r}")
        if which == "evals":
            return pd.DataFrame(self.evals)
        if self.diverged_at is None:
            return pd.DataFrame(self.history)
        h = self.history  # an ensemble: one row per (step, member)
        rows = zip(h["step"], h["loss"], h["noise_level"], h["skipped"])
        return pd.DataFrame([{"step": s, "member": i, "loss": loss[i], "noise_level": noise[i], "skipped": skipped[i]}
                             for s, loss, noise, skipped in rows for i in range(len(loss))])  # fmt: skip


@dataclass
class _LoopState:
    """Everything that changes during a run and goes into a checkpoint (besides model and RNGs).

    The lists hold one entry per member (one for a single model): non-finite steps, non-finite
    steps in a row, the open loss window's sum, count and skipped steps, and where it was frozen.
    """

    step: int = 0
    nonfinite: list[int] = field(default_factory=lambda: [0])
    in_row: list[int] = field(default_factory=lambda: [0])
    win_sum: list[float] = field(default_factory=lambda: [0.0])
    win_n: list[int] = field(default_factory=lambda: [0])
    win_skipped: list[int] = field(default_factory=lambda: [0])
    diverged_at: list[Optional[int]] = field(default_factory=lambda: [None])
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": [], "noise_level": [], "skipped": []})
    evals: list = field(default_factory=list)
    best_value: float = math.inf
    best_step: Optional[int] = None
    best_state: Optional[dict] = None
    elapsed: float = 0.0

    @classmethod
    def fresh(cls, members: int) -> "_LoopState":
        """The state before the first step of a run with ``members`` members."""
        m = members
        return cls(nonfinite=[0] * m, in_row=[0] * m, win_sum=[0.0] * m, win_n=[0] * m, win_skipped=[0] * m,
                   diverged_at=[None] * m)  # fmt: skip


class _Batches:
    """Epoch-wise shuffled mini-batches of ``data``, in the order drawn from ``seed``; resumable at any step."""

    def __init__(self, data: torch.Tensor, config: TrainConfig, seed: int) -> None:
        self.data, self.size = data, config.batch_size
        self.per_epoch = config.steps_per_epoch(len(data))
        self.gen = torch.Generator().manual_seed(seed)
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


def _per_member(data: Any, config: TrainConfig, mollifier: Any) -> tuple[list, list, list, Optional[int]]:
    """``(data sets, seeds, mollifiers, M)``, one entry per member, checked (a single model: one member, M None)."""
    ensemble = isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(d, torch.Tensor) for d in data)
    if not ensemble:
        if isinstance(config.seed, (tuple, list)) or isinstance(mollifier, (tuple, list)):
            raise ValueError("one seed or mollifier per member needs one data set per member: give data as a list")
        _check_data(data, config)
        return [data], [config.seed], [mollifier], None
    m = len(data)
    seeds = list(config.seed) if isinstance(config.seed, (tuple, list)) else [config.seed] * m
    mollifiers = list(mollifier) if isinstance(mollifier, (tuple, list)) else [mollifier] * m
    if len(seeds) != m or len(mollifiers) != m:
        raise ValueError(f"need one seed and one mollifier per data set ({m}), got {len(seeds)} and {len(mollifiers)}")
    for d in data:
        _check_data(d, config)
    if config.epochs is not None and len({config.steps_per_epoch(len(d)) for d in data}) > 1:
        raise ValueError("training by epochs needs equally many batches per epoch in every data set; give steps")
    return list(data), seeds, mollifiers, m


def _plain(value: Any) -> Any:
    """``value`` as plain, comparable Python data (for fingerprints)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__qualname__", type(value).__name__)


def _mollifier_fingerprint(mollifier: Any) -> dict:
    """The settings of one mollifier that a checkpoint must match."""
    fp = {"mollifier": None if mollifier is None else type(mollifier).__name__,
          "mollifier.generator": isinstance(getattr(mollifier, "generator", None), torch.Generator)}  # fmt: skip
    for name in ("kind", "horizon", "schedule", "schedule_kwargs", "step_quantum", "schedule_horizon"):
        if hasattr(mollifier, name):
            fp[f"mollifier.{name}"] = _plain(getattr(mollifier, name))
    return fp


def _fingerprint(config: TrainConfig, datasets: list, model: torch.nn.Module, mollifiers: list, optimizer,
                 one: Callable[[list], Any]) -> dict:  # fmt: skip
    """What must not change between a checkpoint and the run resuming from it (flat, plain data).

    ``one`` turns per-member lists into what is recorded (the list, or a single model's only entry).
    """
    fp = {f"config.{f.name}": _plain(getattr(config, f.name)) for f in fields(config) if f.name not in _RUN_ONLY}
    fp["data"] = one([[list(d.shape), str(d.dtype), f"sum={float(d.double().sum()):.9g}"] for d in datasets])
    fp["model"] = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    fp["optimizer"] = [type(optimizer).__name__, _plain(optimizer.defaults)]
    per = [_mollifier_fingerprint(f) for f in mollifiers]
    fp.update({k: one([p.get(k) for p in per]) for k in dict.fromkeys(k for p in per for k in p)})
    return fp


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

    With clipping: the global 2-norm. Without: the sum of the gradients' sums on the CPU (each
    gradient read once), the global 2-norm (fused kernels) elsewhere. Cost: ``benchmarks/README.md``.
    """
    params = [p for p in params if p.grad is not None]
    if grad_clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not params:
        return torch.zeros(())
    grads = [p.grad for p in params]
    if grads[0].device.type != "cpu" and hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.stack([g.sum() for g in grads]).sum()


def _member_grad_check(params: list[torch.nn.Parameter], members: int, grad_clip: Optional[float]) -> torch.Tensor:
    """Per member ``[M]``: a number finite iff all of that member's gradient entries are.

    Parameters are stacked along dim 0. With ``grad_clip``, each member's slice of the
    gradient is first clipped to 2-norm ``grad_clip`` (as ``clip_grad_norm_`` does for
    one model) and the norms are returned; without, the sums of the entries.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    flat = torch.cat([g.reshape(members, -1) for g in grads], dim=1)
    if grad_clip is None:
        return flat.sum(dim=1)
    norms = flat.norm(dim=1)
    scale = (grad_clip / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.ndim - 1)))
    return norms


def _step_except(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], bad: torch.Tensor) -> None:
    """``optimizer.step()``, then put back the parameters and per-element optimizer state of the
    members in ``bad`` (bool ``[M]``; parameters stacked along dim 0): for them the step is skipped.
    Scalar state (Adam's step count) is shared by all members and still advances. The members' rows
    are gathered and put back with ``index_select`` / ``index_copy_`` over one index tensor."""
    rows = bad.nonzero().squeeze(1)
    members = len(bad)
    saved = []
    for p in params:
        state = {k: v.index_select(0, rows) for k, v in optimizer.state.get(p, {}).items()
                 if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == members}  # fmt: skip
        saved.append((p.detach().index_select(0, rows), state, p in optimizer.state))
    optimizer.step()
    with torch.no_grad():
        for p, (value, state, had_state) in zip(params, saved):
            p.index_copy_(0, rows, value)
            for k, v in optimizer.state[p].items():
                if not (torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == members):
                    continue
                if had_state:
                    v.index_copy_(0, rows, state[k])
                else:  # the state was created by this step: the skipped members start from zero
                    v.index_fill_(0, rows, 0.0)


def train(
    model: torch.nn.Module,
    data: Union[torch.Tensor, list[torch.Tensor]],
    config: TrainConfig,
    *,
    mollifier: Union[Callable[[torch.Tensor, int], torch.Tensor], list, None] = None,
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

    ``mollifier`` (``None`` = vanilla) maps each batch: ``x = mollifier(x, step)``.
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
    datasets, seeds, mollifiers, members = _per_member(data, config, mollifier)
    metrics = dict(metrics or {})
    if any(not callable(fn) for fn in metrics.values()):
        raise ValueError("metrics must map names to callables fn(model) -> float")
    select_metric = select_metric or next(iter(metrics), None)
    if select_metric is not None and select_metric not in metrics:
        raise ValueError(f"select_metric={select_metric!r} is not one of the metrics {list(metrics)}")
    extra_state = dict(extra_state or {})
    for name, obj in extra_state.items():
        if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
            raise ValueError(f"extra_state[{name!r}] must have state_dict() and load_state_dict(state), "
                             f"got {type(obj).__name__}")  # fmt: skip
    if loss_fn is None and not callable(getattr(model, "forward_kld", None)):
        raise ValueError(f"{type(model).__name__} has no forward_kld(x); pass loss_fn=lambda model, x: ...")
    device = check_device(config.device)  # a device this machine lacks: refused before any work, with the fix
    model.to(device).train()
    streams = [_Batches(d.to(device), config, s) for d, s in zip(datasets, seeds)]
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    ckpt = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir is not None else None
    loop = _Loop(model, config, mollifiers, members, loss_fn or nll_loss, optimizer, metrics, select_metric, device,
                 streams, ckpt, epoch_end, step_end, extra_state)  # fmt: skip
    resuming = ckpt is not None and ckpt.exists()
    state = loop.resume() if resuming else _LoopState.fresh(len(streams))
    resumed_from = state.step if resuming else None
    loop.run(state, config.total_steps(len(datasets[0])), callback)
    return TrainResult(
        history=state.history, evals=state.evals, final_step=state.step, num_nonfinite=sum(state.nonfinite),
        elapsed=state.elapsed, best_metric=select_metric, best_value=state.best_value,
        best_step=state.best_step, best_state=state.best_state, resumed_from=resumed_from,
        member_nonfinite=state.nonfinite if members else None, diverged_at=state.diverged_at if members else None,
    )  # fmt: skip


def _mean(values: list[float]) -> float:
    """The mean of the non-nan ``values`` (nan if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@dataclass
class _Loop:
    """The step loop proper, with what stays fixed during a run.

    Per-member things (``mollifiers``, ``streams``) are lists with one entry per member;
    ``members`` is M for an ensemble and ``None`` for a single model (one entry).
    """

    model: torch.nn.Module
    config: TrainConfig
    mollifiers: list
    members: Optional[int]
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    metrics: dict[str, Metric]
    select: Optional[str]
    device: torch.device
    streams: list[_Batches]
    ckpt: Optional[Path]
    epoch_end: Optional[Callable[[int, torch.nn.Module], None]] = None
    step_end: Optional[Callable[[int, torch.nn.Module], None]] = None
    extra_state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if self.members and any(p.shape[:1] != (self.members,) for p in self.params):
            raise ValueError(f"one data set per member needs a model whose parameters are stacked along dim 0 "
                             f"({self.members} members), e.g. a FlowEnsemble")  # fmt: skip
        self.per_epoch = self.streams[0].per_epoch
        self.fingerprint = _fingerprint(self.config, [b.data for b in self.streams], self.model, self.mollifiers,
                                        self.optimizer, self._one)  # fmt: skip
        if self.extra_state:  # only then: the fingerprints of runs without extra state stay as they were
            self.fingerprint["extra_state"] = {
                name: _plain(obj.fingerprint()) if callable(getattr(obj, "fingerprint", None)) else type(obj).__name__
                for name, obj in self.extra_state.items()
            }

    def _one(self, values: list) -> Any:
        """Per-member ``values`` as recorded: the list for an ensemble, the only entry for a single model."""
        return values if self.members else values[0]

    def _each(self, recorded: Any) -> list:
        """The inverse of :meth:`_one`: one entry per member."""
        return recorded if self.members else [recorded]

    def run(self, state: _LoopState, total: int, callback) -> None:
        """Step until ``total`` steps are done, logging, evaluating and saving on the way."""
        cfg, per_epoch = self.config, self.per_epoch
        log_every = cfg.log_every or max(1, math.ceil(total / 1000))
        eval_every = cfg.eval_every or (per_epoch if cfg.epochs is not None else 0)
        start = time.perf_counter() - state.elapsed
        shown = show_progress() if cfg.progress is None else cfg.progress
        bar = progress_bar(total=total, initial=state.step, desc=cfg.desc, disable=not shown, dynamic_ncols=True)
        try:
            while state.step < total:
                self._step(state)
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
                if self.ckpt and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total):
                    self._save(state)
                if callback is not None:
                    callback(done, self.model)
        finally:
            bar.close()

    def _batch(self, step: int) -> torch.Tensor:
        """The mollified input of 0-based ``step``: ``[B, ...]``, or ``[M, B, ...]`` for an ensemble."""
        xs = [b(step) if f is None else f(b(step), step) for b, f in zip(self.streams, self.mollifiers)]
        return torch.stack(xs) if self.members else xs[0]

    def _step(self, state: _LoopState) -> None:
        """One step: batch, mollify, loss, backward, and an update of the members whose loss and gradient are finite."""
        x = self._batch(state.step)
        self.optimizer.zero_grad(set_to_none=True)
        values, finite = self._backward(self.loss_fn(self.model, x))
        update = [ok and frozen is None for ok, frozen in zip(finite, state.diverged_at)]
        if all(update):
            self.optimizer.step()
        elif any(update):
            skip = torch.tensor([not u for u in update], device=self.params[0].device)
            _step_except(self.optimizer, self.params, skip)
        self._count(state, values, finite)
        state.step += 1

    def _backward(self, loss: torch.Tensor) -> tuple[list[float], list[bool]]:
        """Backpropagate ``loss`` (an ensemble's: their sum); per member, its loss value and whether it
        and its gradient are finite."""
        if self.members is None:
            loss.backward()
            grad_check = _grad_check(self.params, self.config.grad_clip)
            value = loss.item()  # waits for the step: the gradient check is then ready too
            return [value], [math.isfinite(value) and math.isfinite(grad_check.item())]
        if loss.shape != (self.members,):
            raise ValueError(f"loss_fn must return one loss per member, shape [{self.members}], "
                             f"got {tuple(loss.shape)}")  # fmt: skip
        loss.sum().backward()
        grad_check = _member_grad_check(self.params, self.members, self.config.grad_clip).to(loss.device)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(grad_check)
        return loss.detach().tolist(), finite.tolist()

    def _count(self, state: _LoopState, values: list[float], finite: list[bool]) -> None:
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
            raise DivergenceError(state.step, limit, sum(state.nonfinite), self.config.lr, self.members)

    def _log(self, state: _LoopState, bar) -> None:
        """Close the loss windows: append their means to the history and refresh the progress bar."""
        losses = [s / n if n else math.nan for s, n in zip(state.win_sum, state.win_n)]
        noise = [_noise_level(f, state.step - 1) for f in self.mollifiers]
        entry = (state.step, self._one(losses), self._one(noise), self._one(state.win_skipped))
        for key, value in zip(("step", "loss", "noise_level", "skipped"), entry):
            state.history[key].append(value)
        m = len(losses)
        state.win_sum, state.win_n, state.win_skipped = [0.0] * m, [0] * m, [0] * m
        if not bar.disable:
            frozen = {"frozen": sum(d is not None for d in state.diverged_at)} if self.members else {}
            bar.set_postfix(loss=f"{_mean(losses):.4g}", noise=f"{_mean(noise):.3g}", skipped=sum(state.nonfinite),
                            **frozen, refresh=False)  # fmt: skip
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
        cuda = self.device.type == "cuda"
        rng = {
            "data": self._one([b.state_dict() for b in self.streams]),
            "mollifier": self._one([f.state_dict() if hasattr(f, "state_dict") else None for f in self.mollifiers]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
        }
        loop = {f.name: getattr(state, f.name) for f in fields(state)}
        obj = {"trainer": "molli_utils.training.train", "fingerprint": self.fingerprint,
               "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": rng, "loop": loop}  # fmt: skip
        if self.extra_state:
            obj["extra"] = {name: o.state_dict() for name, o in self.extra_state.items()}
        checkpoints.save(obj, self.ckpt)

    def resume(self) -> _LoopState:
        """Load ``self.ckpt`` into model, optimizer and RNGs (refusing another config); return its loop state."""
        ckpt = checkpoints.load(self.ckpt)
        if ckpt.get("trainer") != "molli_utils.training.train":
            raise checkpoints.CheckpointError(f"{self.ckpt} was written by {ckpt.get('trainer')!r}, not by "
                                              "molli_utils.training.train; use another checkpoint_dir")  # fmt: skip
        checkpoints.check_fingerprint(self.ckpt, ckpt.get("fingerprint"), self.fingerprint)
        parts = ("model", "optimizer", "rng", "loop", *(("extra",) if self.extra_state else ()))
        checkpoints.require(self.ckpt, ckpt, parts)
        checkpoints.require(self.ckpt, ckpt["rng"], ("data", "mollifier", "torch", "cuda"), where="rng")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"]
        for batches, data_state in zip(self.streams, self._each(rng["data"])):
            batches.load_state_dict(data_state)
        for mollifier, moll_state in zip(self.mollifiers, self._each(rng["mollifier"])):
            if moll_state is not None:
                mollifier.load_state_dict(moll_state)
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if self.extra_state:
            checkpoints.require(self.ckpt, ckpt["extra"], tuple(self.extra_state), where="extra")
            for name, obj in self.extra_state.items():
                obj.load_state_dict(ckpt["extra"][name])
        return _LoopState(**ckpt["loop"])
