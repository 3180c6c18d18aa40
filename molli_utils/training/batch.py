"""What the image flows do to each training batch around the paper's one line: the loop's ``prepare`` hook.

The loop (:func:`molli_utils.training.train`) applies, to every batch::

    x = prepare.before(x)          # the data to the model's space
    x = mollifier(x, step)         # the paper's one line
    x = prepare.after(x, step)     # what the model needs on top

:class:`FlowBatches` is that ``prepare`` for an image flow:

1. ``before``: the images (``[0, 1]``, ``levels`` grey levels ``k``) go to the flow's space ``[-1, 1]``:
   the centre of each level's cell, ``c = 2 (k + 1/2) / levels - 1``;
2. the loop's one line, ``c = mollifier(c, step)`` (Gaussian noise or blurring, the first part of training);
3. ``after``: **uniform dequantisation**, ``z = c + 2 (u - 1/2) / levels`` with fresh ``u ~ U[0, 1)``. On clean
   data this is ``z = 2 (k + u) / levels - 1``, the usual dequantisation
   (:func:`molli_utils.models.image_flows.to_flow_space`); on mollified data it keeps the dequantisation's noise
   floor, so that blurred images, which lie close to a low-dimensional set, still have a density of bounded
   height. Without dequantisation (``dequantize=False``, as the paper's official code), ``before`` gives
   ``2 x - 1`` and ``after`` adds nothing;
4. ``after``, with several processes (:mod:`molli_utils.training.distributed`): **this rank's rows** of the
   global batch.

The loop saves :meth:`FlowBatches.state_dict` (the dequantisation generator) in its checkpoints beside the
mollifier's, so a resumed run draws the same noise as an uninterrupted one.

Every rank draws the dequantisation and mollification noise of the *whole* global batch, from generators seeded
identically on every rank, and keeps its own rows: the noise of each image is independent of every other image's,
on every rank, and a run on ``W`` processes sees exactly the batches of a one-process run with the same global
batch (the cost: noise for ``W`` times the local batch, negligible beside a flow's forward pass).
"""

from __future__ import annotations

from typing import Any, Optional

import torch


__all__ = ["FlowBatches"]


class FlowBatches:
    """The image flows' ``prepare`` hook: :meth:`before` the one line, the cells' centres; :meth:`after`, the
    dequantisation noise, then rows ``[rank * b, (rank + 1) * b)``.

    ``x`` is the global batch ``[B, C, H, W]`` of images in ``[0, 1]``; ``b = B / world_size``. ``generator``
    draws the dequantisation noise (``None``: the global RNG). The last global (mollified, un-sharded) batch is
    kept as :attr:`last_global` (the data-dependent initialisation of a distributed run uses it). A ``B`` that
    does not split evenly over the processes raises ValueError.
    """

    def __init__(
        self,
        levels: int,
        *,
        dequantize: bool = True,
        generator: Optional[torch.Generator] = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not (isinstance(levels, int) and levels >= 2):
            raise ValueError(f"levels must be an int >= 2 (the data's grey levels), got {levels!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        self.levels, self.dequantize = levels, dequantize
        self.dequantize_generator = generator
        self.rank, self.world_size = rank, world_size
        self.last_global: Optional[torch.Tensor] = None

    def before(self, x: torch.Tensor) -> torch.Tensor:
        """Each pixel at the centre of its cell, in the flow's space."""
        n, w = x.shape[0], self.world_size
        if n % w:
            raise ValueError(f"{n} rows do not split evenly over {w} ranks")
        if not self.dequantize:
            return 2.0 * x - 1.0
        k = torch.round(x * (self.levels - 1))  # each pixel's grey level
        return 2.0 * (k + 0.5) / self.levels - 1.0

    def after(self, z: torch.Tensor, step: int) -> torch.Tensor:
        """Add the dequantisation noise; keep this rank's rows."""
        if self.dequantize:
            like = {"dtype": z.dtype, "device": z.device}
            gen = self.dequantize_generator
            u = torch.rand(z.shape, generator=gen, **like)
            z = z + 2.0 * (u - 0.5) / self.levels
        self.last_global = z
        if self.world_size == 1:
            return z
        b = z.shape[0] // self.world_size
        return z[self.rank * b : (self.rank + 1) * b]

    def __call__(self, x: torch.Tensor, step: int, mollifier: Optional[Any] = None) -> torch.Tensor:
        """The whole transform as the loop applies it: ``after(mollifier(before(x), step), step)``."""
        z = self.before(x)
        if mollifier is not None:
            z = mollifier(z, step)
        return self.after(z, step)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share (the same on every rank)."""
        return {"levels": self.levels, "dequantize": self.dequantize, "world_size": self.world_size}

    def state_dict(self) -> dict[str, Any]:
        """The dequantisation generator's state (``None`` without a generator)."""
        gen = self.dequantize_generator
        return {"dequantize": None if gen is None else gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ValueError if the saved run and this one differ in having a generator."""
        saved, gen = state.get("dequantize"), self.dequantize_generator
        if (saved is None) != (gen is None):
            raise ValueError(
                "the saved dequantisation state and this run differ in having a generator; "
                "resume with the settings of the run that wrote the checkpoint"
            )
        if gen is not None:
            gen.set_state(saved)
