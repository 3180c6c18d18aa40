"""Checkpoints of the loop: what a run saves, how it resumes bitwise, and what it must match to resume.

A checkpoint (``checkpoint_dir/checkpoint.pt``, in the one format of :mod:`molli_utils.checkpoints`:
atomic, SHA-256 checked, weights only) holds the model's and the optimizer's state dicts, every
random state the run draws from (each member's batch order, each mollifier's generator, the global
torch state and, on a GPU, its CUDA state), the :class:`LoopState` and the ``extra_state`` objects'
states. Restoring all of them makes the rest of the run bitwise identical, on the CPU, to an
uninterrupted one.

A checkpoint also holds a *fingerprint* (:func:`fingerprint`): plain data of everything that decides
the trained parameters (the config's fields other than :data:`RUN_ONLY`, the data's shapes, dtypes
and sums, the model's parameter names and shapes, the optimizer and its defaults, the mollifiers'
settings, the extra states' fingerprints). :meth:`Checkpoint.load` refuses a checkpoint whose
fingerprint differs, or that another trainer wrote, with a
:class:`~molli_utils.checkpoints.CheckpointError` that says what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .. import checkpoints
from .config import TrainConfig

__all__ = ["CHECKPOINT_NAME", "TRAINER", "RUN_ONLY", "LoopState", "Checkpoint", "fingerprint"]

#: The checkpoint's file name in ``config.checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"
#: The ``trainer`` entry of the loop's checkpoints (the VAEs' trainer writes its own name).
TRAINER = "molli_utils.training.train"
#: Config fields that do not change the trained parameters: left out of the checkpoint's fingerprint.
RUN_ONLY = ("progress", "desc", "checkpoint_dir", "checkpoint_every", "device")


@dataclass
class LoopState:
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
    def fresh(cls, members: int) -> "LoopState":
        """The state before the first step of a run with ``members`` members."""
        m = members
        return cls(
            nonfinite=[0] * m,
            in_row=[0] * m,
            win_sum=[0.0] * m,
            win_n=[0] * m,
            win_skipped=[0] * m,
            diverged_at=[None] * m,
        )


def plain(value: Any) -> Any:
    """``value`` as plain, comparable Python data (for fingerprints): containers recursively, numbers and
    strings as they are, anything else by its ``__qualname__`` or type name."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__qualname__", type(value).__name__)


def mollifier_fingerprint(mollifier: Any) -> dict:
    """The settings of one mollifier that a checkpoint must match."""
    fp = {
        "mollifier": None if mollifier is None else type(mollifier).__name__,
        "mollifier.generator": isinstance(getattr(mollifier, "generator", None), torch.Generator),
    }
    for name in ("kind", "horizon", "schedule", "schedule_kwargs", "step_quantum", "schedule_horizon"):
        if hasattr(mollifier, name):
            fp[f"mollifier.{name}"] = plain(getattr(mollifier, name))
    return fp


def fingerprint(
    config: TrainConfig,
    datasets: list,
    model: torch.nn.Module,
    mollifiers: list,
    optimizer,
    one: Callable[[list], Any],
    extra_state: Optional[dict[str, Any]] = None,
) -> dict:
    """What must not change between a checkpoint and the run resuming from it (flat, plain data).

    ``one`` turns per-member lists into what is recorded (the list, or a single model's only entry).
    ``extra_state`` objects add their ``fingerprint()`` (or their type's name); without any, the
    fingerprint has no ``extra_state`` entry at all.
    """
    fp = {f"config.{f.name}": plain(getattr(config, f.name)) for f in fields(config) if f.name not in RUN_ONLY}
    fp["data"] = one([[list(d.shape), str(d.dtype), f"sum={float(d.double().sum()):.9g}"] for d in datasets])
    fp["model"] = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    fp["optimizer"] = [type(optimizer).__name__, plain(optimizer.defaults)]
    per = [mollifier_fingerprint(f) for f in mollifiers]
    fp.update({k: one([p.get(k) for p in per]) for k in dict.fromkeys(k for p in per for k in p)})
    if extra_state:
        fp["extra_state"] = {
            name: plain(obj.fingerprint()) if callable(getattr(obj, "fingerprint", None)) else type(obj).__name__
            for name, obj in extra_state.items()
        }
    return fp


@dataclass
class Checkpoint:
    """The loop's checkpoint file ``path`` and what it saves and restores.

    ``streams`` and ``mollifiers`` have one entry per member; ``one`` / ``each`` convert per-member
    lists to what is recorded and back (see :class:`~molli_utils.training.ensemble.Members`).
    """

    path: Path
    fingerprint: dict
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    streams: list
    mollifiers: list
    one: Callable[[list], Any]
    each: Callable[[Any], list]
    device: torch.device
    extra_state: dict[str, Any]

    @classmethod
    def of_run(
        cls,
        config: TrainConfig,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        streams: list,
        mollifiers: list,
        members: Any,
        device: torch.device,
        extra_state: dict[str, Any],
    ) -> Optional["Checkpoint"]:
        """The checkpoint of a run in ``config.checkpoint_dir`` (``None`` without one), fingerprinted;
        ``members`` is the run's :class:`~molli_utils.training.ensemble.Members`."""
        if config.checkpoint_dir is None:
            return None
        fp = fingerprint(config, [b.data for b in streams], model, mollifiers, optimizer, members.one, extra_state)
        return cls(
            Path(config.checkpoint_dir) / CHECKPOINT_NAME,
            fp,
            model,
            optimizer,
            streams,
            mollifiers,
            members.one,
            members.each,
            device,
            extra_state,
        )

    def save(self, state: LoopState) -> None:
        """Write model, optimizer, every RNG state and the loop state to :attr:`path`, atomically."""
        cuda = self.device.type == "cuda"
        rng = {
            "data": self.one([b.state_dict() for b in self.streams]),
            "mollifier": self.one([f.state_dict() if hasattr(f, "state_dict") else None for f in self.mollifiers]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
        }
        loop = {f.name: getattr(state, f.name) for f in fields(state)}
        obj = {
            "trainer": TRAINER,
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "loop": loop,
        }
        if self.extra_state:
            obj["extra"] = {name: o.state_dict() for name, o in self.extra_state.items()}
        checkpoints.save(obj, self.path)

    def load(self) -> LoopState:
        """Load :attr:`path` into model, optimizer, RNGs and extra states; return its loop state.

        Raises :class:`~molli_utils.checkpoints.CheckpointError` for a file another trainer wrote, one
        of another run (fingerprint), or one that lacks a part.
        """
        ckpt = checkpoints.load(self.path)
        if ckpt.get("trainer") != TRAINER:
            raise checkpoints.CheckpointError(
                f"{self.path} was written by {ckpt.get('trainer')!r}, not by {TRAINER}; use another checkpoint_dir"
            )
        checkpoints.check_fingerprint(self.path, ckpt.get("fingerprint"), self.fingerprint)
        parts = ("model", "optimizer", "rng", "loop", *(("extra",) if self.extra_state else ()))
        checkpoints.require(self.path, ckpt, parts)
        checkpoints.require(self.path, ckpt["rng"], ("data", "mollifier", "torch", "cuda"), where="rng")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"]
        for batches, data_state in zip(self.streams, self.each(rng["data"])):
            batches.load_state_dict(data_state)
        for mollifier, moll_state in zip(self.mollifiers, self.each(rng["mollifier"])):
            if moll_state is not None:
                mollifier.load_state_dict(moll_state)
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if self.extra_state:
            checkpoints.require(self.path, ckpt["extra"], tuple(self.extra_state), where="extra")
            for name, obj in self.extra_state.items():
                obj.load_state_dict(ckpt["extra"][name])
        return LoopState(**ckpt["loop"])
