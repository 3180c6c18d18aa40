"""What a run of :func:`~molli_utils.training.train` takes and returns: its settings, its record, its error.

* :class:`TrainConfig`: the settings of one run, checked when made (a ``ValueError`` names the
  field and what it must be).
* :class:`TrainResult`: the loss history, the metric evaluations and the best state of a run.
* :class:`DivergenceError`: too many non-finite steps in a row.
* :func:`nll_loss`: the default loss, a normflows model's mean negative log-likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

__all__ = ["TrainConfig", "TrainResult", "DivergenceError", "nll_loss", "LossFn", "Metric"]

#: ``loss_fn(model, x)``: a scalar loss (for an ensemble of M members: one per member, ``[M]``).
LossFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
#: ``fn(model) -> float``, run in eval mode without gradients.
Metric = Callable[[torch.nn.Module], float]


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
    (``None``: unless ``$MOLLI_PROGRESS=0``, see :func:`~molli_utils.training.show_progress`).
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
        return pd.DataFrame(
            [
                {"step": s, "member": i, "loss": loss[i], "noise_level": noise[i], "skipped": skipped[i]}
                for s, loss, noise, skipped in rows
                for i in range(len(loss))
            ]
        )
