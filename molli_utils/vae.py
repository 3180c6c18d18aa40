"""Image VAEs of the paper (Sec. 4.2, Appendix D.3.2) built with pythae, and mollified training.

* :class:`ConvEncoder` / :class:`ConvDecoder`: the conv nets of the paper's Table 5
  (the same as pythae's CIFAR / CelebA benchmark nets) for ``3 x 32 x 32`` and
  ``3 x 64 x 64`` images, with a ``width`` multiplier on the channels (1.0 = the
  paper's 128/256/512/1024; CPU quick runs use e.g. 1/16).
* :func:`make_vae`: VAE, beta-VAE (beta = 0.1), IWAE (K = 5), VAE-IAF (2 MADE blocks
  of 3 hidden layers of 128 units) and HVAE (1 leapfrog step, step size 1e-3,
  learned) through pythae's own config classes.
* :class:`MollifiedTrainer`: pythae's ``BaseTrainer`` with the paper's one line
  ``x = mollifier(x, step)`` applied to every *training* batch (never to evaluation
  or prediction batches), optional resume from the end of any epoch, and mixed
  precision on a GPU (:func:`resolve_precision`).

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

import math
import os
import random
from copy import deepcopy
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from pythae.models import HVAE, IWAE, VAE, VAE_IAF, BetaVAE, BetaVAEConfig, HVAEConfig, IWAEConfig, VAE_IAF_Config, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.trainers import BaseTrainer, BaseTrainerConfig
from pythae.trainers.base_trainer.base_trainer import logger as _pythae_logger

from .mollifiers import Mollifier

__all__ = [
    "VAE_KINDS",
    "PAPER_CHANNELS",
    "SPACES",
    "ConvEncoder",
    "ConvDecoder",
    "make_vae",
    "mollify_images",
    "mollification_horizon",
    "MollifiedTrainer",
    "RESUME_NAME",
    "PRECISIONS",
    "MIN_LOSS_SCALE",
    "resolve_precision",
]

#: VAE variants of the paper's Table 3, as :func:`make_vae` names them.
VAE_KINDS = ("vae", "beta_vae", "iwae", "vae_iaf", "hvae")
#: Channels of the four conv layers of Table 5 at ``width=1``.
PAPER_CHANNELS = (128, 256, 512, 1024)
#: Where Gaussian mollification is applied (see the module docstring).
SPACES = ("symmetric", "input")
#: File in ``resume_dir`` holding the state of the last finished epoch.
RESUME_NAME = "resume.pt"
#: Arithmetic of the training step (see :func:`resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Below this fp16 loss scale (17 halvings of the initial 2**16 without a finite step in between)
#: a run counts as diverged: :class:`MollifiedTrainer` raises instead of skipping steps forever.
MIN_LOSS_SCALE = 1.0
_SIZES = (32, 64)


def _channels(width: float) -> list[int]:
    """Table 5's channels times ``width``, rounded, at least 1."""
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive number (1.0 = the paper's 128/256/512/1024 channels), got {width!r}")
    return [max(1, round(c * width)) for c in PAPER_CHANNELS]


def _check_input_dim(input_dim: Sequence[int]) -> tuple[int, int, int]:
    dim = tuple(int(d) for d in input_dim)
    if len(dim) != 3 or dim[1] != dim[2] or dim[1] not in _SIZES or dim[0] <= 0:
        raise ValueError(
            f"input_dim must be (channels, H, W) with H = W in {list(_SIZES)} (Table 5: CIFAR-10 32x32, "
            f"CelebA 64x64), got {tuple(input_dim)}"
        )
    return dim  # type: ignore[return-value]


def _conv_block(c_in: int, c_out: int, k: int, s: int, p: int, op: int = 0, transpose: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d(c_in, c_out, k, s, padding=p, output_padding=op) if transpose else nn.Conv2d(c_in, c_out, k, s, padding=p)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class ConvEncoder(BaseEncoder):
    """Table 5 encoder: 4 x [CONV(c, 4, 2) -> BN -> RELU] -> FLATTEN -> FC(latent x 2).

    Returns ``ModelOutput(embedding=mu, log_covariance=log_var)`` (pythae's Gaussian
    encoder interface) for ``x`` of shape ``[B, *input_dim]``.
    """

    def __init__(self, input_dim: Sequence[int] = (3, 32, 32), latent_dim: int = 256, width: float = 1.0):
        BaseEncoder.__init__(self)
        c_in, size, _ = _check_input_dim(input_dim)
        chans = _channels(width)
        self.layers = nn.Sequential(*[_conv_block(a, b, 4, 2, 1) for a, b in zip([c_in, *chans[:-1]], chans)])
        n_flat = chans[-1] * (size // 16) ** 2
        self.embedding = nn.Linear(n_flat, latent_dim)
        self.log_var = nn.Linear(n_flat, latent_dim)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.layers(x).flatten(1)
        return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))


class ConvDecoder(BaseDecoder):
    """Table 5 decoder: FC(8 x 8 x c4) -> transposed convs -> sigmoid, output in ``[0, 1]``.

    32 x 32: CONVT(c3, 4, 2) -> BN -> RELU -> CONVT(c2, 4, 2) -> BN -> RELU -> CONVT(3, 4, 1).
    64 x 64: CONVT(c3, 5, 2), CONVT(c2, 5, 2), CONVT(c1, 5, 2) (each -> BN -> RELU) -> CONVT(3, 4, 1).
    Paddings follow pythae's benchmark nets (the 64 x 64 net's last kernel is 5 there,
    as here). Returns ``ModelOutput(reconstruction=x)``.
    """

    def __init__(self, input_dim: Sequence[int] = (3, 32, 32), latent_dim: int = 256, width: float = 1.0):
        BaseDecoder.__init__(self)
        c_out, size, _ = _check_input_dim(input_dim)
        c1, c2, c3, c4 = _channels(width)
        self.c4 = c4
        self.fc = nn.Linear(latent_dim, c4 * 8 * 8)
        if size == 32:
            blocks = [_conv_block(c4, c3, 4, 2, 1, transpose=True), _conv_block(c3, c2, 4, 2, 1, 1, transpose=True),
                      nn.ConvTranspose2d(c2, c_out, 4, 1, padding=2)]  # fmt: skip
        else:
            blocks = [_conv_block(c4, c3, 5, 2, 2, transpose=True), _conv_block(c3, c2, 5, 2, 1, transpose=True),
                      _conv_block(c2, c1, 5, 2, 2, 1, transpose=True), nn.ConvTranspose2d(c1, c_out, 5, 1, padding=1)]  # fmt: skip
        self.layers = nn.Sequential(*blocks, nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> ModelOutput:
        h = self.fc(z).reshape(z.shape[0], self.c4, 8, 8)
        return ModelOutput(reconstruction=self.layers(h))


def _config(kind: str, input_dim: tuple[int, int, int], latent_dim: int, **overrides: Any):
    """pythae config of ``kind`` with the paper's settings (Appendix D.3.2), updated by ``overrides``."""
    base = dict(input_dim=input_dim, latent_dim=latent_dim, reconstruction_loss="mse")
    paper: dict[str, tuple[type, dict[str, Any]]] = {
        "vae": (VAEConfig, {}),
        "beta_vae": (BetaVAEConfig, {"beta": 0.1}),
        "iwae": (IWAEConfig, {"number_samples": 5}),
        "vae_iaf": (VAE_IAF_Config, {"n_made_blocks": 2, "n_hidden_in_made": 3, "hidden_size": 128}),
        "hvae": (HVAEConfig, {"n_lf": 1, "eps_lf": 1e-3, "learn_eps_lf": True}),
    }
    cls, settings = paper[kind]
    return cls(**{**base, **settings, **overrides})


_MODELS = {"vae": VAE, "beta_vae": BetaVAE, "iwae": IWAE, "vae_iaf": VAE_IAF, "hvae": HVAE}


def make_vae(kind: str, input_dim: Sequence[int] = (3, 32, 32), latent_dim: int = 256, width: float = 1.0, **overrides: Any):
    """A pythae VAE variant with the Table 5 conv nets and the paper's settings (Appendix D.3.2).

    ``kind``: ``vae``; ``beta_vae`` (``BetaVAEConfig.beta = 0.1``); ``iwae``
    (``IWAEConfig.number_samples = 5``); ``vae_iaf`` (``VAE_IAF_Config``:
    ``n_made_blocks = 2``, ``n_hidden_in_made = 3``, ``hidden_size = 128``); ``hvae``
    (``HVAEConfig``: ``n_lf = 1``, ``eps_lf = 1e-3``, ``learn_eps_lf = True`` -- the
    paper's "adaptive" step size). All use ``reconstruction_loss = "mse"``.
    ``overrides`` replace config fields (e.g. ``beta=1.0``).
    """
    if kind not in _MODELS:
        raise ValueError(f"unknown VAE kind {kind!r}; choose one of {list(VAE_KINDS)}")
    dim = _check_input_dim(input_dim)
    if not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive integer (the paper uses 256), got {latent_dim!r}")
    config = _config(kind, dim, latent_dim, **overrides)
    return _MODELS[kind](config, encoder=ConvEncoder(dim, latent_dim, width), decoder=ConvDecoder(dim, latent_dim, width))


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
        raise ValueError(f"num_epochs, n_train and batch_size must be positive, got {num_epochs}, {n_train}, {batch_size}")
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
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)} "
                         "('auto' = mixed precision on a GPU, float32 elsewhere)")  # fmt: skip
    if precision != "auto":
        return precision
    if torch.device(device).type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


class MollifiedTrainer(BaseTrainer):
    """pythae ``BaseTrainer`` that mollifies every training batch: ``x = mollifier(x, step)``.

    ``step`` is the trainer's own counter ``self.step`` (0, 1, 2, ... across epochs),
    advanced once per training batch whether or not the mollifier is still active.
    Mollification happens in :meth:`_set_inputs_to_device` only inside
    :meth:`train_step` and only while ``self.model.training``: evaluation batches,
    :meth:`predict` and the constructor's sanity check see the clean data.
    See :func:`mollify_images` for ``space``.

    ``resume_dir``: when given, :meth:`train` writes ``resume_dir/resume.pt`` at the
    end of every epoch (model, best model, optimizer, scheduler, step counter, epoch,
    best losses, the torch/numpy/random RNG states and the mollifier's generator) and,
    if that file exists when :meth:`train` starts, continues from it. On the CPU the
    resumed run ends with the same parameters as an uninterrupted one. pythae's own
    ``save_checkpoint`` cannot do this: it stores the best model, not the current one,
    and ``BaseTrainer.train`` always starts at epoch 1. The fp16 loss scale is saved too.

    ``precision`` (:func:`resolve_precision`; default ``"fp32"``): with ``"bf16"`` or
    ``"fp16"`` the forward pass runs under ``torch.autocast``; ``"fp16"`` also scales the
    loss with a ``torch.amp.GradScaler``, which skips the steps whose gradients overflow
    (counted in :attr:`skipped_steps`; the first few steps of a run are skipped while the
    scale settles). If the scale falls below :data:`MIN_LOSS_SCALE`, the gradients are
    not finite at any scale and the run stops with ``ArithmeticError``. Leave pythae's
    own ``training_config.amp`` off: it autocasts to float16 without loss scaling, so
    small gradients can vanish (the constructor refuses it).
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
    ):
        if not isinstance(mollifier, Mollifier):
            raise ValueError(f"mollifier must be a molli_utils.mollifiers.Mollifier (kind='none' for vanilla training), got {type(mollifier).__name__}")
        if space not in SPACES:
            raise ValueError(f"unknown mollification space {space!r}; choose one of {list(SPACES)}")
        self.mollifier, self.space, self.step = mollifier, space, 0
        self.resume_dir = None if resume_dir is None else Path(resume_dir)
        self._in_train_step = False
        if training_config is not None and training_config.amp:
            raise ValueError("training_config.amp=True is pythae's float16 autocast without loss scaling; "
                             "leave it False and pass precision='auto' (or 'fp16'/'bf16') to MollifiedTrainer")  # fmt: skip
        resolve_precision(precision, "cpu")  # a clear error before pythae builds anything
        super().__init__(model, train_dataset, eval_dataset, training_config, callbacks)
        self.precision = resolve_precision(precision, self.device)
        device_type = torch.device(self.device).type
        self.scaler = torch.amp.GradScaler(device_type) if self.precision == "fp16" else None
        self._scale = None if self.scaler is None else self.scaler.get_scale()  # the scale after the last step
        self.skipped_steps = 0
        if self.precision != "fp32":
            self.amp_context = torch.autocast(device_type, dtype=_AUTOCAST_DTYPE[self.precision])
        gen = mollifier.generator
        if gen is not None and gen.device.type != torch.device(self.device).type:
            raise ValueError(
                f"the mollifier's generator is on {gen.device} but pythae trains on {self.device}; pass "
                f"Mollifier(..., generator=torch.Generator(device={str(self.device)!r}).manual_seed(seed)) "
                "or set training_config.no_cuda=True"
            )

    def _set_inputs_to_device(self, inputs):
        inputs = super()._set_inputs_to_device(inputs)
        model = getattr(self, "model", None)  # absent during __init__'s sanity check
        if model is None or not self._in_train_step or not model.training:
            return inputs
        step, self.step = self.step, self.step + 1
        out = type(inputs)(**inputs)
        out["data"] = mollify_images(inputs["data"], self.mollifier, step, self.space)
        return out

    def _optimizers_step(self, model_output=None):
        """pythae's step (zero_grad, backward, step); with ``"fp16"``, through the gradient scaler."""
        if self.scaler is None:
            return super()._optimizers_step(model_output)
        self.optimizer.zero_grad()
        self.scaler.scale(model_output.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        scale, self._scale = self._scale, self.scaler.get_scale()  # one host sync per step
        self.skipped_steps += int(self._scale < scale)  # the scale shrinks only after a skipped step
        if self._scale < MIN_LOSS_SCALE:
            raise ArithmeticError(
                f"fp16 loss scaling skipped {self.skipped_steps} steps and the scale fell to {self._scale:g}: "
                "the gradients are inf or nan at any scale, so the run has diverged; train with precision='fp32' "
                "(or 'bf16' on a GPU that has it) or a lower learning rate"
            )

    def train_step(self, epoch: int):
        self._in_train_step = True
        try:
            return super().train_step(epoch)
        finally:
            self._in_train_step = False

    # ---- resumable training -------------------------------------------------------------
    def train(self, log_output_dir: Optional[str] = None):
        """pythae's training loop; with ``resume_dir``, the resumable loop of :meth:`_train_resumable`."""
        if self.resume_dir is None:
            return super().train(log_output_dir)
        return self._train_resumable()

    def _state(self, epoch: int, best: dict[str, Any]) -> dict[str, Any]:
        gen = self.mollifier.generator
        return {
            "epoch": epoch, "step": self.step, "model_name": self.model_name,
            "mollifier": (self.mollifier.kind, self.mollifier.horizon),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best": best, "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(), "mollifier_rng": None if gen is None else gen.get_state(),
            "precision": self.precision, "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "skipped_steps": self.skipped_steps,
        }  # fmt: skip

    def _save_state(self, state: dict[str, Any]) -> None:
        self.resume_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.resume_dir / (RESUME_NAME + ".part")
        torch.save(state, tmp)
        os.replace(tmp, self.resume_dir / RESUME_NAME)

    def _load_state(self) -> Optional[dict[str, Any]]:
        path = self.resume_dir / RESUME_NAME
        if not path.exists():
            return None
        state = torch.load(path, map_location=self.device, weights_only=False)
        mine = (self.model_name, (self.mollifier.kind, self.mollifier.horizon))
        if (state["model_name"], tuple(state["mollifier"])) != mine:
            raise ValueError(
                f"{path} was written for {state['model_name']} with mollifier {tuple(state['mollifier'])}, "
                f"not {mine[0]} with {mine[1]}; use another resume_dir or delete the file"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
            self._scale = self.scaler.get_scale()
        self.skipped_steps = state.get("skipped_steps", 0)
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if self.mollifier.generator is not None and state["mollifier_rng"] is not None:
            self.mollifier.generator.set_state(state["mollifier_rng"])
        return state

    def _train_resumable(self) -> None:
        """pythae's ``BaseTrainer.train`` loop from the epoch after the saved one (no ``predict`` calls,
        no pythae checkpoints); saves the resume state after every epoch and the best model at the end."""
        cfg = self.training_config
        self.prepare_training()
        state = self._load_state()
        best = {"train": 1e10, "eval": 1e10, "model": None} if state is None else state["best"]
        best_model = deepcopy(self.model)
        if best["model"] is not None:
            best_model.load_state_dict(best["model"])
        self.callback_handler.on_train_begin(training_config=cfg, model_config=self.model_config)
        for epoch in range(1 if state is None else state["epoch"] + 1, cfg.num_epochs + 1):
            self.callback_handler.on_epoch_begin(training_config=cfg, epoch=epoch, train_loader=self.train_loader, eval_loader=self.eval_loader)
            metrics = {"train_epoch_loss": self.train_step(epoch)}
            if self.eval_dataset is not None:
                metrics["eval_epoch_loss"] = self.eval_step(epoch)
            self._schedulers_step(metrics.get("eval_epoch_loss", metrics["train_epoch_loss"]))
            which = "train" if cfg.keep_best_on_train else "eval"
            if f"{which}_epoch_loss" in metrics and metrics[f"{which}_epoch_loss"] < best[which]:
                best = {**best, which: metrics[f"{which}_epoch_loss"], "model": deepcopy(self.model.state_dict())}
                best_model = deepcopy(self.model)
            self.callback_handler.on_epoch_end(training_config=cfg)
            self.callback_handler.on_log(cfg, metrics, logger=_pythae_logger, global_step=epoch, rank=self.rank)
            self._save_state(self._state(epoch, best))
        self._best_model = best_model
        self.save_model(best_model, dir_path=os.path.join(self.training_dir, "final_model"))
        self.callback_handler.on_train_end(cfg)
