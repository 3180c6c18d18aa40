"""What the image flows do to each training batch before the loss, as one mollifier for the book's loop.

The generic loop (:func:`molli_utils.training.train`) applies ``x = mollifier(x, step)`` to every
batch. An image flow needs two more things per batch, in this order:

1. the images (``[0, 1]``, ``levels`` grey levels ``k``) go to the flow's space ``[-1, 1]``:
   the centre of each level's cell, ``c = 2 (k + 1/2) / levels - 1``;
2. the paper's **one line**: ``c = mollifier(c, step)`` (Gaussian noise or blurring, the first
   part of training only);
3. **uniform dequantisation**: ``z = c + 2 (u - 1/2) / levels`` with fresh ``u ~ U[0, 1)``. On
   clean data this is ``z = 2 (k + u) / levels - 1``, the usual dequantisation
   (:func:`molli_utils.models.image_flows.to_flow_space`); on mollified data it keeps the
   dequantisation's noise floor, so that blurred images, which lie close to a low-dimensional
   set, still have a density of bounded height. Without dequantisation (``dequantize=False``,
   as the paper's official code), ``z = mollifier(2 x - 1, step)``;
4. with several processes (:mod:`molli_utils.training.distributed`): **this rank's rows** of the
   global batch.

:class:`FlowBatches` does all three and follows :class:`~molli_utils.mollifiers.MollifierLike`,
so the loop takes it as its ``mollifier``: it logs the noise level, fingerprints the mollifier's
settings and saves both random generators (dequantisation and noise) in its checkpoints, and a
resumed run draws the same noise as an uninterrupted one. No loop is duplicated.

Every rank draws the dequantisation and mollification noise of the *whole* global batch, from
generators seeded identically on every rank, and keeps its own rows: the noise of each image is
independent of every other image's, on every rank, and a run on ``W`` processes sees exactly the
batches of a one-process run with the same global batch (the cost: noise for ``W`` times the
local batch, negligible beside a flow's forward pass).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..mollifiers import Mollifier

__all__ = ["FlowBatches"]


class FlowBatches:
    """``mollifier(cell centres of x, step) + dequantisation noise``, then rows ``[rank * b, (rank + 1) * b)``.

    ``x`` is the global batch ``[B, C, H, W]`` of images in ``[0, 1]``; ``b = B / world_size``.
    ``generator`` draws the dequantisation noise (``None``: the global RNG). The last global
    (mollified, un-sharded) batch is kept as :attr:`last_global` (the data-dependent
    initialisation of a distributed run uses it).
    """

    def __init__(
        self,
        mollifier: Mollifier,
        levels: int,
        *,
        dequantize: bool = True,
        generator: Optional[torch.Generator] = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(mollifier, Mollifier):
            raise ValueError(
                f"mollifier must be a molli_utils.mollifiers.Mollifier (kind='none' for vanilla), "
                f"got {type(mollifier).__name__}"
            )
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        self.mollifier, self.levels, self.dequantize = mollifier, levels, dequantize
        self.dequantize_generator = generator
        self.rank, self.world_size = rank, world_size
        self.last_global: Optional[torch.Tensor] = None

    # what the loop's checkpoint fingerprint records of a mollifier
    kind = property(lambda self: self.mollifier.kind)
    horizon = property(lambda self: self.mollifier.horizon)
    schedule = property(lambda self: self.mollifier.schedule)
    schedule_kwargs = property(lambda self: self.mollifier.schedule_kwargs)
    generator = property(lambda self: self.mollifier.generator)
    step_quantum = property(lambda self: getattr(self.mollifier, "step_quantum", 1))

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        if x.shape[0] % self.world_size:
            raise ValueError(f"the global batch ({x.shape[0]}) must split evenly over {self.world_size} processes")
        if self.dequantize:
            L = self.levels
            centres = 2.0 * (torch.round(x * (L - 1)) + 0.5) / L - 1.0
            u = torch.rand(x.shape, generator=self.dequantize_generator, dtype=x.dtype, device=x.device)
            # the one line, then the dequantisation noise:
            z = self.mollifier(centres, step) + 2.0 * (u - 0.5) / L
        else:
            z = self.mollifier(2.0 * x - 1.0, step)  # the one line
        self.last_global = z
        if self.world_size == 1:
            return z
        b = x.shape[0] // self.world_size
        return z[self.rank * b : (self.rank + 1) * b]

    def active(self, step: int) -> bool:
        return self.mollifier.active(step)

    def noise_level(self, step: int) -> float:
        return self.mollifier.noise_level(step)

    def state_dict(self) -> dict[str, Any]:
        """Both generators' states (``None`` where a generator is absent)."""
        gen = self.dequantize_generator
        return {"mollifier": self.mollifier.state_dict(), "dequantize": None if gen is None else gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mollifier.load_state_dict(state["mollifier"])
        saved, gen = state.get("dequantize"), self.dequantize_generator
        if (saved is None) != (gen is None):
            raise ValueError(
                "the saved dequantisation state and this run differ in having a generator; "
                "resume with the settings of the run that wrote the checkpoint"
            )
        if gen is not None:
            gen.set_state(saved)
