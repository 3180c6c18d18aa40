"""The one module that relies on pythae's internals: :class:`PythaeTrainer`, its ``BaseTrainer`` with hooks.

pythae's ``BaseTrainer`` (``pythae.trainers``) offers no public hooks for what the book's trainer needs:
a per-batch transformation of training batches, loss scaling in fp16, resuming mid-run, and a
distributed run on CPUs. :class:`PythaeTrainer` gets them from parts of pythae that are not its
public API, all named here; they are what ties ``pyproject.toml``'s pin of pythae (``<0.2``, tested
with 0.1.2) to this file:

* ``_set_inputs_to_device(inputs)`` (private, called for every batch: training, evaluation,
  prediction and the constructor's sanity check) is overridden by the subclass,
  :class:`~molli_utils.training.vae.MollifiedTrainer`: it is where the paper's one line goes, and
  chapter 6 prints that method. :class:`PythaeTrainer` tells it whether the batch belongs to a
  training step (``self._in_train_step``, set around pythae's ``train_step``).
* ``_optimizers_step(model_output)`` (private: zero_grad, backward, step) is overridden: with
  fp16 (:meth:`PythaeTrainer._use_precision`) it goes through a ``torch.amp.GradScaler`` and
  counts the skipped steps; pythae's own ``amp`` autocasts to float16 without scaling.
* ``amp_context`` (set in pythae's constructor, entered around the forward pass) is replaced by
  ``torch.autocast`` with the chosen dtype.
* ``train(log_output_dir)`` is replaced, with ``resume_dir`` or several processes, by
  :meth:`PythaeTrainer._train_resumable`, a copy of ``BaseTrainer.train``'s epoch loop that starts
  after the last saved epoch; it calls pythae's private ``_schedulers_step(metrics)``, sets its
  private ``_best_model`` (what ``BaseTrainer.train`` leaves for the caller) and logs through the
  module logger ``pythae.trainers.base_trainer.base_trainer.logger``.
* Several processes: pythae's own DDP path (``training_config.world_size > 1``) needs CUDA, so the
  config's ``world_size``, ``rank`` and ``local_rank`` are set to one process before pythae's
  constructor and :meth:`PythaeTrainer._distribute` wraps the model in ``DistributedDataParallel``
  itself, setting pythae's ``distributed`` flag and replacing its ``train_loader``.

A subclass provides the resume state: ``load_resume_state()`` (the saved state, or ``None``) and
``save_resume_state(epoch, best)``.
"""

from __future__ import annotations

import os
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any, Optional, Union

import torch

with warnings.catch_warnings():  # pythae's trainers import tqdm.auto, which warns in a notebook without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.base_trainer.base_trainer import logger as _pythae_logger

__all__ = ["PythaeTrainer", "BaseTrainer", "BaseTrainerConfig", "AUTOCAST_DTYPES", "MIN_LOSS_SCALE"]

#: The autocast dtype of each low precision (see :func:`~molli_utils.training.vae.resolve_precision`).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Below this fp16 loss scale (17 halvings of the initial 2**16 without a finite step in between)
#: a run counts as diverged: :class:`PythaeTrainer` raises instead of skipping steps forever.
MIN_LOSS_SCALE = 1.0


class PythaeTrainer(BaseTrainer):
    """pythae's ``BaseTrainer`` with the hooks listed in the module docstring.

    ``dist`` is a :class:`~molli_utils.training.distributed.Context` (default: from the environment);
    ``resume_dir`` (``None``: pythae's own ``train``) is where a subclass keeps its resume state.
    """

    def __init__(
        self,
        model,
        train_dataset,
        eval_dataset=None,
        training_config: Optional[BaseTrainerConfig] = None,
        callbacks=None,
        *,
        resume_dir: Union[str, Path, None] = None,
        dist: Any = None,
    ):
        self.resume_dir = None if resume_dir is None else Path(resume_dir)
        self._in_train_step = False
        from .distributed import Context

        self.dist = Context() if dist is None else dist
        if self.dist.distributed:
            # pythae's own DDP path (world_size > 1, read from torchrun's variables) needs CUDA: it passes
            # device_ids for a CPU module and starts the process group only on GPUs. The trainer builds a
            # one-process pythae trainer and wraps the model itself (see _distribute).
            training_config = training_config or BaseTrainerConfig()
            training_config.world_size, training_config.rank, training_config.local_rank = 1, -1, -1
            if not training_config.no_cuda and torch.cuda.is_available():
                torch.cuda.set_device(self.dist.local_rank)
        super().__init__(model, train_dataset, eval_dataset, training_config, callbacks)
        if self.dist.distributed:
            self._distribute()

    def _use_precision(self, precision: str) -> None:
        """Train in ``precision`` (``"fp32"``, ``"bf16"`` or ``"fp16"``): autocast for the low precisions, and a
        gradient scaler for fp16."""
        device_type = torch.device(self.device).type
        self.scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
        self._scale = None if self.scaler is None else self.scaler.get_scale()  # the scale after the last step
        self.skipped_steps = 0
        if precision != "fp32":
            self.amp_context = torch.autocast(device_type, dtype=AUTOCAST_DTYPES[precision])

    def _distribute(self) -> None:
        """Several processes (``dist.world_size > 1``): DistributedDataParallel around the model, and a loader of
        the global batch shuffled by a generator seeded alike on every rank (each rank keeps its rows of
        every batch, in the subclass's ``_set_inputs_to_device``)."""
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DataLoader

        from pythae.data.datasets import collate_dataset_output

        device = torch.device(self.device)
        self.model = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.distributed = True
        self._loader_gen = torch.Generator()
        self.train_loader = DataLoader(
            dataset=self.train_dataset,
            batch_size=self.training_config.per_device_train_batch_size,
            shuffle=True,
            generator=self._loader_gen,
            collate_fn=collate_dataset_output,
        )

    @property
    def bare_model(self):
        """The model itself (without the DistributedDataParallel wrapper of a distributed run)."""
        model = self.model
        return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model

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
        """pythae's training epoch, with ``self._in_train_step`` set while it runs."""
        if self.dist.distributed:
            # the batch order (identical on every rank) and this rank's own model noise (e.g. the VAEs'
            # reparameterisation), both re-seeded per epoch, so that a resumed run draws what an uninterrupted one does
            seed = self.training_config.seed
            self._loader_gen.manual_seed(seed + epoch)
            torch.manual_seed(1_000_003 * (self.dist.rank + 1) + 1_009 * seed + epoch)
        self._in_train_step = True
        try:
            return super().train_step(epoch)
        finally:
            self._in_train_step = False

    def train(self, log_output_dir: Optional[str] = None):
        """pythae's training loop; with ``resume_dir`` or several processes, the resumable loop of
        :meth:`_train_resumable`."""
        if self.resume_dir is None and not self.dist.distributed:
            return super().train(log_output_dir)
        return self._train_resumable()

    def load_resume_state(self) -> Optional[dict[str, Any]]:
        """The saved state to continue from, loaded into the trainer (``None``: start afresh); it holds at least
        ``epoch`` (the last finished one) and ``best`` (as passed to :meth:`save_resume_state`)."""
        return None

    def save_resume_state(self, epoch: int, best: dict[str, Any]) -> None:
        """Save the state after ``epoch``; ``best``: the best ``train`` and ``eval`` losses and the best model's
        state dict (``model``)."""

    def _train_resumable(self) -> None:
        """pythae's ``BaseTrainer.train`` loop from the epoch after the saved one (no ``predict`` calls,
        no pythae checkpoints); saves the resume state after every epoch and the best model at the end."""
        from .distributed import barrier

        cfg = self.training_config
        self.prepare_training()
        state = self.load_resume_state()
        barrier(self.dist)  # every rank has read the resume file before rank 0 writes the next one
        best = {"train": 1e10, "eval": 1e10, "model": None} if state is None else state["best"]
        best_model = deepcopy(self.bare_model)
        if best["model"] is not None:
            best_model.load_state_dict(best["model"])
        self.callback_handler.on_train_begin(training_config=cfg, model_config=self.model_config)
        for epoch in range(1 if state is None else state["epoch"] + 1, cfg.num_epochs + 1):
            self.callback_handler.on_epoch_begin(
                training_config=cfg, epoch=epoch, train_loader=self.train_loader, eval_loader=self.eval_loader
            )
            metrics = {"train_epoch_loss": self.train_step(epoch)}
            if self.eval_dataset is not None:
                metrics["eval_epoch_loss"] = self.eval_step(epoch)
            self._schedulers_step(metrics.get("eval_epoch_loss", metrics["train_epoch_loss"]))
            which = "train" if cfg.keep_best_on_train else "eval"
            if f"{which}_epoch_loss" in metrics and metrics[f"{which}_epoch_loss"] < best[which]:
                best = {**best, which: metrics[f"{which}_epoch_loss"], "model": deepcopy(self.bare_model.state_dict())}
                best_model = deepcopy(self.bare_model)
            self.callback_handler.on_epoch_end(training_config=cfg)
            self.callback_handler.on_log(cfg, metrics, logger=_pythae_logger, global_step=epoch, rank=self.rank)
            self.save_resume_state(epoch, best)
        self._best_model = best_model
        if self.dist.distributed:  # pythae's save_model expects the wrapped model then
            if self.dist.main:
                best_model.save(os.path.join(self.training_dir, "final_model"))
        else:
            self.save_model(best_model, dir_path=os.path.join(self.training_dir, "final_model"))
        self.callback_handler.on_train_end(cfg)
