"""Training the image VAEs with mollification: pythae's trainer with the paper's one line.

* :class:`MollifiedTrainer`: pythae's ``BaseTrainer`` with ``x = mollifier(x, step)`` applied
  to every *training* batch (never to evaluation or prediction batches), resumable from the
  end of any epoch through the book's one checkpoint format (:mod:`molli_utils.checkpoints`),
  and mixed precision on a GPU (:func:`resolve_precision`).
* :func:`mollify_images`, :func:`mollification_horizon`: where and for how long images are
  mollified.

The heart of the trainer is one overridden method, :meth:`MollifiedTrainer._set_inputs_to_device`:
pythae calls it for every batch, and during a training step it applies the one line
``x = mollifier(x, step)`` (and, on several processes, keeps this rank's rows of the global batch).

Data range. Images are in ``[0, 1]`` and the decoders end in a sigmoid. The
Gaussian mollifier ``sqrt(1 - s) x + sqrt(s) eps`` (paper Eq. 2) assumes data of
roughly unit scale centred at 0, so by default (``space="symmetric"``) the trainer
mollifies ``2x - 1`` and maps the result back with ``(y + 1) / 2``: the fully
mollified batch is ``0.5 + eps / 2`` (grey plus noise). ``space="input"`` mollifies
the ``[0, 1]`` model input as it is, literally as the paper's code does (fully
mollified: ``eps``). Blurring commutes with this affine map (it keeps constants), so
``space`` only matters for Gaussian mollification. Either way the mollified batch
may leave ``[0, 1]``; the default ``"mse"`` reconstruction loss allows that.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .. import checkpoints
from ..mollifiers import Mollifier
from .pythae_adapter import MIN_LOSS_SCALE, BaseTrainerConfig, PythaeTrainer

__all__ = [
    "SPACES",
    "mollify_images",
    "mollification_horizon",
    "MollifiedTrainer",
    "RESUME_NAME",
    "PRECISIONS",
    "MIN_LOSS_SCALE",
    "resolve_precision",
    "quiet_pythae",
]

#: Where Gaussian mollification is applied (see the module docstring).
SPACES = ("symmetric", "input")
#: File in ``resume_dir`` holding the state of the last finished epoch (the format of :mod:`molli_utils.checkpoints`).
RESUME_NAME = "checkpoint.pt"
#: Arithmetic of the training step (see :func:`resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def quiet_pythae(level: int = logging.ERROR) -> None:
    """Silence pythae's loggers (they log every epoch at INFO level)."""
    logging.getLogger("pythae").setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(level)


def mollify_images(x: torch.Tensor, mollifier: Mollifier, step: int, space: str = "symmetric") -> torch.Tensor:
    """``mollifier(x, step)`` for images ``x`` in ``[0, 1]``.

    ``space="symmetric"``: ``(mollifier(2x - 1, step) + 1) / 2`` for Gaussian mollification
    (noise of unit scale on data in ``[-1, 1]``); ``space="input"``: ``mollifier(x, step)``.
    Blurring is applied directly in both cases (it commutes with the affine map).
    """
    if space not in SPACES:
        raise ValueError(f"unknown mollification space {space!r}; choose one of {list(SPACES)}")
    if space == "input" or mollifier.kind != "gaussian" or not mollifier.active(step):
        return mollifier(x, step)
    return (mollifier(2.0 * x - 1.0, step) + 1.0) / 2.0


def mollification_horizon(num_epochs: int, n_train: int, batch_size: int, fraction: float = 0.5) -> int:
    """Number of training steps mollified: ``fraction`` of ``num_epochs * ceil(n_train / batch_size)``.

    The paper mollifies the first half of image training (``fraction = 0.5``: 100 of
    200 epochs on CIFAR-10, 50 of 100 on CelebA). pythae keeps the last partial batch,
    hence the ceiling. At least 1.
    """
    if min(num_epochs, n_train, batch_size) <= 0:
        raise ValueError(
            f"num_epochs, n_train and batch_size must be positive, got {num_epochs}, {n_train}, {batch_size}"
        )
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1] (0.5 = first half of training), got {fraction}")
    return max(1, int(fraction * num_epochs * math.ceil(n_train / batch_size)))


def resolve_precision(precision: str, device: Union[str, torch.device]) -> str:
    """The arithmetic of a training step on ``device``: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"`` picks mixed precision where it is safe and pays: on a CUDA GPU that computes
    bfloat16 natively (Ampere and later: A100, L4, H100) ``"bf16"``, which needs no loss
    scaling; on older GPUs (Colab's T4, V100) ``"fp16"``, always with a gradient scaler;
    on a CPU or MPS ``"fp32"`` (autocast there is slower or lossy for these nets). Under
    autocast, matrix products and convolutions run in the low precision while the loss
    reductions (``mse_loss``, ``logsumexp``, sums) stay in float32; mollification and
    sampling are outside autocast. An explicit ``"fp32"``, ``"bf16"`` or ``"fp16"`` is
    returned as it is (on a CPU the low precisions work too, for tests and benchmarks).
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; choose one of {list(PRECISIONS)} "
            "('auto' = mixed precision on a GPU, float32 elsewhere)"
        )
    if precision != "auto":
        return precision
    if torch.device(device).type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


class MollifiedTrainer(PythaeTrainer):
    """pythae ``BaseTrainer`` that mollifies every training batch: ``x = mollifier(x, step)``.

    ``step`` is the trainer's own counter ``self.step`` (0, 1, 2, ... across epochs),
    advanced once per training batch whether or not the mollifier is still active.
    Mollification happens in :meth:`_set_inputs_to_device` only inside
    :meth:`train_step` and only while ``self.model.training``: evaluation batches,
    :meth:`predict` and the constructor's sanity check see the clean data.
    See :func:`mollify_images` for ``space``.

    ``resume_dir``: when given, :meth:`train` writes ``resume_dir/checkpoint.pt`` (the book's
    one checkpoint format, :mod:`molli_utils.checkpoints`: atomic, SHA-256 checked, weights
    only) at the end of every epoch -- model, best model, optimizer, scheduler, step counter,
    epoch, best losses, the torch/numpy/random RNG states, the mollifier's generator and the
    fp16 loss scale -- and, if that file exists when :meth:`train` starts, continues from it
    (refusing a damaged file, or one of another model, mollifier or precision). A run
    interrupted anywhere, mid-epoch included, resumes from its last finished epoch and ends,
    on the CPU, with the same parameters as an uninterrupted one. pythae's own
    ``save_checkpoint`` cannot do this: it stores the best model, not the current one,
    and ``BaseTrainer.train`` always starts at epoch 1.

    ``precision`` (:func:`resolve_precision`; default ``"fp32"``): with ``"bf16"`` or
    ``"fp16"`` the forward pass runs under ``torch.autocast``; ``"fp16"`` also scales the
    loss with a ``torch.amp.GradScaler``, which skips the steps whose gradients overflow
    (counted in :attr:`skipped_steps`; the first few steps of a run are skipped while the
    scale settles). If the scale falls below :data:`MIN_LOSS_SCALE`, the gradients are
    not finite at any scale and the run stops with ``ArithmeticError``. Leave pythae's
    own ``training_config.amp`` off: it autocasts to float16 without loss scaling, so
    small gradients can vanish (the constructor refuses it).

    What it takes from pythae beyond its public API is in :mod:`molli_utils.training.pythae_adapter`
    (:class:`~molli_utils.training.pythae_adapter.PythaeTrainer`, its base); the one private pythae
    method overridden here is ``_set_inputs_to_device``, the place of the one line.
    """

    def __init__(
        self,
        model,
        train_dataset,
        eval_dataset=None,
        training_config: Optional[BaseTrainerConfig] = None,
        callbacks=None,
        *,
        mollifier: Mollifier,
        space: str = "symmetric",
        resume_dir: Union[str, Path, None] = None,
        precision: str = "fp32",
        dist: Any = None,
    ):
        if not isinstance(mollifier, Mollifier):
            raise ValueError(
                f"mollifier must be a molli_utils.mollifiers.Mollifier (kind='none' for vanilla training), got {type(mollifier).__name__}"
            )
        if space not in SPACES:
            raise ValueError(f"unknown mollification space {space!r}; choose one of {list(SPACES)}")
        self.mollifier, self.space, self.step = mollifier, space, 0
        if training_config is not None and training_config.amp:
            raise ValueError(
                "training_config.amp=True is pythae's float16 autocast without loss scaling; "
                "leave it False and pass precision='auto' (or 'fp16'/'bf16') to MollifiedTrainer"
            )
        resolve_precision(precision, "cpu")  # a clear error before pythae builds anything
        super().__init__(
            model, train_dataset, eval_dataset, training_config, callbacks, resume_dir=resume_dir, dist=dist
        )
        self.precision = resolve_precision(precision, self.device)
        self._use_precision(self.precision)
        gen = mollifier.generator
        if gen is not None and gen.device.type != torch.device(self.device).type:
            raise ValueError(
                f"the mollifier's generator is on {gen.device} but pythae trains on {self.device}; pass "
                f"Mollifier(..., generator=torch.Generator(device={str(self.device)!r}).manual_seed(seed)) "
                "or set training_config.no_cuda=True"
            )

    def _set_inputs_to_device(self, inputs):
        inputs = super()._set_inputs_to_device(inputs)
        model = getattr(self, "model", None)  # None in __init__'s check
        if model is None or not self._in_train_step or not model.training:
            return inputs
        step, self.step = self.step, self.step + 1
        out = type(inputs)(**inputs)
        x = inputs["data"]
        # the one line:
        out["data"] = mollify_images(x, self.mollifier, step, self.space)
        if self.dist.distributed:  # this rank's rows of the global batch
            rows = torch.tensor_split(out["data"], self.dist.world_size)
            out["data"] = rows[self.dist.rank]
        return out

    # ---- resumable training (PythaeTrainer's hooks) ---------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        """What a resume file must match: the model, its parameter shapes, the mollifier and the arithmetic."""
        fingerprint = {
            "model": self.model_name,
            "mollifier": [self.mollifier.kind, self.mollifier.horizon],
            "parameters": [[k, list(v.shape)] for k, v in self.bare_model.state_dict().items()],
            "epochs": self.training_config.num_epochs,
            "precision": self.precision,
        }
        variance = getattr(self.bare_model, "decoder_variance", 1.0)
        if variance != 1.0:  # (checkpoints of the paper's likelihood keep the fingerprint they had)
            fingerprint["decoder_variance"] = variance
        return fingerprint

    def _state(self, epoch: int, best: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes during training, as plain data (the checkpoint's payload)."""
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "trainer": "molli_utils.training.vae.MollifiedTrainer",
            "fingerprint": self._fingerprint(),
            "epoch": epoch,
            "step": self.step,
            "model": self.bare_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best": best,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": {
                "kind": kind,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "python_rng": list(random.getstate()[1]),
            "mollifier_rng": self.mollifier.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "skipped_steps": self.skipped_steps,
        }

    def save_resume_state(self, epoch: int, best: dict[str, Any]) -> None:
        """Write ``resume_dir/checkpoint.pt`` (rank 0 only) with the state after ``epoch``."""
        self._save_state(self._state(epoch, best))

    def _save_state(self, state: dict[str, Any]) -> None:
        if self.resume_dir is not None and self.dist.main:  # rank 0 writes; every rank resumes from its file
            checkpoints.save(state, self.resume_dir / RESUME_NAME)

    def load_resume_state(self) -> Optional[dict[str, Any]]:
        """The state in ``resume_dir/checkpoint.pt``, loaded into the trainer, or ``None`` without one."""
        if self.resume_dir is None:
            return None
        path = self.resume_dir / RESUME_NAME
        if not path.exists():
            return None
        state = checkpoints.load(path, map_location=self.device)
        checkpoints.require(path, state, ("trainer", "fingerprint"))
        if state.get("trainer") != "molli_utils.training.vae.MollifiedTrainer":
            raise checkpoints.CheckpointError(
                f"{path} was written by {state.get('trainer')!r}, not by MollifiedTrainer; "
                "use another resume_dir or delete the file"
            )
        checkpoints.check_fingerprint(path, state.get("fingerprint"), self._fingerprint())
        checkpoints.require(
            path,
            state,
            ("model", "optimizer", "scheduler", "step", "torch_rng", "numpy_rng", "python_rng", "mollifier_rng"),
        )
        checkpoints.require(
            path, state["numpy_rng"], ("kind", "keys", "pos", "has_gauss", "cached_gaussian"), where="numpy_rng"
        )
        self.bare_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
            self._scale = self.scaler.get_scale()
        self.skipped_steps = state.get("skipped_steps", 0)
        torch.set_rng_state(state["torch_rng"].cpu())
        np_rng = state["numpy_rng"]
        np.random.set_state(
            (
                np_rng["kind"],
                np_rng["keys"].numpy().astype(np.uint32),
                np_rng["pos"],
                np_rng["has_gauss"],
                np_rng["cached_gaussian"],
            )
        )
        random.setstate((3, tuple(state["python_rng"]), None))
        self.mollifier.load_state_dict(state["mollifier_rng"])
        return state
