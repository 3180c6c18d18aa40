"""The loop's mini-batches: each epoch a fresh permutation of the data, resumable at any step.

:class:`EpochBatches` draws epoch ``e``'s permutation from its own ``torch.Generator`` (seeded with
the run's seed, never the global random state) and returns the ``batch_size`` rows of position
``step % steps_per_epoch`` in it. With ``drop_last`` the last partial batch of each epoch is
dropped. Its :meth:`~EpochBatches.state_dict` holds the generator's state at the start of the
current epoch and now, so a resumed run redraws the same permutation and sees the same batches.
"""

from __future__ import annotations

from typing import Optional

import torch

from .config import TrainConfig

__all__ = ["EpochBatches"]


class EpochBatches:
    """Epoch-wise shuffled mini-batches of ``data`` (``[N, ...]``), in the order drawn from ``seed``."""

    def __init__(self, data: torch.Tensor, config: TrainConfig, seed: int) -> None:
        self.data, self.size = data, config.batch_size
        self.per_epoch = config.steps_per_epoch(len(data))
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch_start = self.gen.get_state()
        self.perm: Optional[torch.Tensor] = None

    def __call__(self, step: int) -> torch.Tensor:
        """The batch of 0-based ``step``: ``[batch_size, ...]`` (fewer rows only for an epoch's last, partial batch)."""
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
        """Continue from :meth:`state_dict`: the next call redraws the epoch's permutation."""
        self.epoch_start, self.perm = state["epoch_start"], None
        self.gen.set_state(state["now"])
