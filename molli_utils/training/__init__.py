"""Training of the book's models, with the paper's one line ``x = mollifier(x, step)``.

* :mod:`molli_utils.training.loop`: :func:`train`, the loop shared by the flows, the flow
  ensembles and INDM (mini-batches, mollification, metrics, early-stopping state, checkpoints
  with bitwise resume, non-finite steps skipped and counted). Its parts:
  :mod:`~molli_utils.training.config` (:class:`TrainConfig`, :class:`TrainResult`,
  :class:`DivergenceError`), :mod:`~molli_utils.training.shuffle` (the mini-batches),
  :mod:`~molli_utils.training.ensemble` (per-member plumbing of ensembles) and
  :mod:`~molli_utils.training.resume` (checkpoints and their fingerprints).
* :mod:`molli_utils.training.vae`: :class:`~molli_utils.training.vae.MollifiedTrainer`, pythae's
  trainer with the same one line, for the image VAEs (imported on demand: it needs pythae). What it
  relies on of pythae beyond its public API is in :mod:`molli_utils.training.pythae_adapter`.

Both write the one checkpoint format of :mod:`molli_utils.checkpoints` and use mollifiers
through :class:`~molli_utils.mollifiers.MollifierLike`.
"""

from .loop import (
    CHECKPOINT_NAME,
    DivergenceError,
    TrainConfig,
    TrainResult,
    nll_loss,
    progress_bar,
    show_progress,
    train,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "DivergenceError",
    "train",
    "nll_loss",
    "progress_bar",
    "show_progress",
    "CHECKPOINT_NAME",
]
