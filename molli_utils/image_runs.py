"""One image-VAE run of the paper's Sec. 4.2 (vanilla, Gaussian or blurring mollification), scored and recorded.

* :func:`train_image_vae`: build a VAE variant (:func:`molli_utils.vae.make_vae`), train it with
  :class:`molli_utils.vae.MollifiedTrainer` -- mollified during the first half of training, as
  in the paper -- and record the training loss per epoch, the time per step and, at chosen
  epochs, samples and a score of them (paper Fig. 7 and Fig. 8).
* :func:`sample_images`: decoder samples ``g(z)``, ``z ~ N(0, I)`` (the prior of all five
  variants), in ``[0, 1]``.
* :func:`random_features_extractor`: a *stand-in* feature extractor (a fixed, randomly
  initialised conv net) for offline runs where the Inception weights of FID cannot be
  loaded. Fréchet distances computed with it are called ``FD-random-features``, never FID.
* :func:`append_result`: one row per run in ``book/results/images.csv`` (full profile only).

Command line (full profile, a GPU)::

    python -m molli_utils.image_runs --dataset cifar10 --models vae iwae --modes vanilla gaussian blur
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from .data.images import ImageData
from .mollifiers import Mollifier
from .runtime import append_csv_rows, git_commit
from .vae import PRECISIONS, MollifiedTrainer, make_vae, mollification_horizon, resolve_precision

__all__ = [
    "MODES",
    "SCORE_FID",
    "SCORE_STANDIN",
    "RESULTS_COLUMNS",
    "RandomFeatures",
    "random_features_extractor",
    "quiet_pythae",
    "make_mollifier",
    "sample_images",
    "ImageRunResult",
    "train_image_vae",
    "git_commit",
    "result_row",
    "append_result",
    "recorded_runs",
    "main",
]

#: Training modes of Table 1.
MODES = ("vanilla", "gaussian", "blur")
#: Name of the score computed with Inception-v3 (pytorch-fid).
SCORE_FID = "FID"
#: Name of the stand-in score: Fréchet distance on features of a fixed random conv net.
SCORE_STANDIN = "FD-random-features"
#: Columns of ``book/results/images.csv``.
RESULTS_COLUMNS = ("dataset", "model", "mollifier", "seed", "score_name", "score", "epochs", "steps", "width",
                   "profile", "precision", "skipped_steps", "seconds_per_step", "device", "commit", "date")  # fmt: skip
_REPO = Path(__file__).resolve().parents[1]


class RandomFeatures(nn.Module):
    """A fixed, randomly initialised conv net ``[B, 3, H, W]`` in ``[0, 1]`` -> features ``[B, dim]``.

    Three strided 3 x 3 convolutions with ReLU, then global average and standard-deviation
    pooling. Its weights depend only on ``seed``; it is a stand-in for Inception-v3 where
    those weights are not available, so that runs can still be *compared with each other*.
    Numbers computed with it are not FID and are on another scale.
    """

    def __init__(self, seed: int = 0, dim: int = 64):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"dim must be an even number >= 4 (mean and std pooling of dim/2 channels), got {dim}")
        gen = torch.Generator().manual_seed(seed)
        c = dim // 2
        self.convs = nn.ModuleList([nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1), nn.Conv2d(32, c, 3, 2, 1)])
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                conv.bias.zero_()
        self.requires_grad_(False)
        self.name = f"{SCORE_STANDIN.lower()}-conv3-seed{seed}-dim{dim}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = 2.0 * x - 1.0
        for conv in self.convs:
            h = torch.relu(conv(h))
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], dim=1)


def random_features_extractor(seed: int = 0, dim: int = 64, device: Union[str, torch.device] = "cpu") -> RandomFeatures:
    """The stand-in extractor of :class:`RandomFeatures`, in eval mode on ``device``."""
    return RandomFeatures(seed, dim).eval().to(device)


def quiet_pythae(level: int = logging.ERROR) -> None:
    """Silence pythae's loggers (they log every epoch at INFO level)."""
    logging.getLogger("pythae").setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(level)


def make_mollifier(mode: str, horizon: int, seed: int = 0, device: Union[str, torch.device] = "cpu") -> Mollifier:
    """``Mollifier`` of a Table 1 mode: ``vanilla`` (kind ``none``), ``gaussian`` (sigmoid schedule) or ``blur``.

    The Gaussian noise comes from a generator on ``device`` seeded with ``seed``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    kind = {"vanilla": "none", "gaussian": "gaussian", "blur": "blur"}[mode]
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed)
    return Mollifier(kind, horizon=max(1, int(horizon)), generator=gen)


@torch.no_grad()
def sample_images(model, n: int = 64, seed: int = 0, batch_size: int = 500, z: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``n`` samples ``decoder(z)``, ``z ~ N(0, I)`` (seeded), on the CPU, in ``[0, 1]``; or the decoder of given ``z``.

    The model is put in eval mode (batch norm uses its running statistics) and its
    training flag is restored afterwards.
    """
    device = next(model.parameters()).device
    if z is None:
        z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        out = [model.decoder(zb.to(device))["reconstruction"].float().cpu() for zb in z.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).clamp_(0.0, 1.0)


@dataclass
class ImageRunResult:
    """What :func:`train_image_vae` returns. ``snapshots[epoch] = {"images": ..., "score": ...}``.

    ``epoch_seconds``: the training time of each epoch run in this session (the first one
    includes warm-up: memory allocation, cuDNN's algorithm search).
    """

    kind: str
    mode: str
    model: Any
    epochs: int
    steps: int
    horizon: int
    precision: str = "fp32"
    device: str = "cpu"
    skipped_steps: int = 0
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    epochs_run: int = 0
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Training time per optimiser step of this session (snapshot work excluded); nan if none ran.

        A resumed run counts only the epochs trained after the resume.
        """
        steps = self.epochs_run * math.ceil(self.steps / max(1, self.epochs))
        return self.train_seconds / steps if steps else math.nan


def _device_name(device: torch.device) -> str:
    """``"cpu"`` or the GPU's name (e.g. ``"cuda: Tesla T4"``), for the results file."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def _recorder(result: ImageRunResult, snapshot_epochs: set[int], snapshot: Optional[Callable], z: torch.Tensor, bar):
    from pythae.trainers.training_callbacks import TrainingCallback

    class Recorder(TrainingCallback):
        """Times each epoch's training steps, records its loss, and takes snapshots (untimed)."""

        epoch = 0
        start = 0.0

        def on_epoch_begin(self, training_config, **kwargs):
            self.epoch = kwargs.get("epoch", self.epoch + 1)
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            seconds = time.perf_counter() - self.start
            result.train_seconds += seconds
            result.epoch_seconds.append(seconds)
            result.epochs_run += 1
            if self.epoch in snapshot_epochs:
                images = sample_images(kwargs["model"], z=z)
                result.snapshots[self.epoch] = {"images": images[:16], "score": None if snapshot is None else snapshot(kwargs["model"])}

        def on_log(self, training_config, logs, **kwargs):
            result.losses.append(float(logs["train_epoch_loss"]))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{result.losses[-1]:.4g}")

    return Recorder()


def train_image_vae(
    kind: str,
    mode: str,
    data: ImageData,
    *,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 3e-4,
    latent_dim: int = 256,
    width: float = 1.0,
    seed: int = 1,
    device: Union[str, torch.device] = "cpu",
    fraction: float = 0.5,
    output_dir: Union[str, Path, None] = None,
    resume_dir: Union[str, Path, None] = None,
    snapshot_epochs: Sequence[int] = (),
    snapshot: Optional[Callable[[Any], float]] = None,
    progress: bool = False,
    precision: str = "auto",
) -> ImageRunResult:
    """Train one (model, mode) of Table 1 on ``data`` with pythae and :class:`~molli_utils.vae.MollifiedTrainer`.

    Adam with ``learning_rate`` (paper: 3e-4, batch 128, 200 epochs on CIFAR-10); the
    data are mollified during the first ``fraction`` of the steps (paper: half), then
    clean. No evaluation set: pythae keeps the model of the last epoch with the best
    training loss, and the returned ``model`` is the *current* (last) model. At the end
    of each epoch in ``snapshot_epochs`` the callback stores 16 decoder samples of fixed
    latents and ``snapshot(model)`` (e.g. a score); that time is not counted in
    ``train_seconds``. ``resume_dir`` makes the run resumable after an interruption
    (the snapshots and losses of the epochs before the interruption are then not
    recorded again). ``progress`` shows one tqdm bar over epochs. ``precision``
    (:func:`~molli_utils.vae.resolve_precision`): ``"auto"`` trains in mixed precision on
    a GPU (bfloat16 where native, else float16 with loss scaling) and in float32 on a CPU.
    """
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import MetricConsolePrinterCallback, ProgressBarCallback

    quiet_pythae()
    device = torch.device(device)
    torch.manual_seed(seed)
    model = make_vae(kind, data.shape, latent_dim, width)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    horizon = mollification_horizon(epochs, len(data), batch_size, fraction)
    result = ImageRunResult(kind, mode, model, epochs, epochs * steps_per_epoch, horizon,
                            precision=resolve_precision(precision, device), device=_device_name(device))  # fmt: skip
    tmp = None
    if output_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="molli-images-")
        output_dir = tmp.name
    config = BaseTrainerConfig(output_dir=str(output_dir), num_epochs=epochs, learning_rate=learning_rate,
                               per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
                               no_cuda=device.type != "cuda", seed=seed, optimizer_cls="Adam")  # fmt: skip
    z = torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(seed + 1000))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=f"{kind}/{mode}", unit="epoch")
    try:
        trainer = MollifiedTrainer(model, BaseDataset(data.images, torch.zeros(len(data))), None, config,
                                   callbacks=[_recorder(result, set(snapshot_epochs), snapshot, z, bar)],
                                   mollifier=make_mollifier(mode, horizon, seed, device), resume_dir=resume_dir,
                                   precision=result.precision)  # fmt: skip
        setup = trainer._setup_callbacks  # pythae adds its per-epoch progress bars and console printer there

        def setup_without_console_output():
            setup()
            handler = trainer.callback_handler
            handler.callbacks = [c for c in handler.callbacks if not isinstance(c, (ProgressBarCallback, MetricConsolePrinterCallback))]

        trainer._setup_callbacks = setup_without_console_output
        trainer.train()
        result.model = trainer.model
        result.skipped_steps = trainer.skipped_steps
    finally:
        if bar is not None:
            bar.close()
        if tmp is not None:
            tmp.cleanup()
    return result


def result_row(run: ImageRunResult, data: ImageData, *, seed: int, score_name: str, score: float, width: float,
               profile: str, commit: Optional[str] = None) -> dict[str, Any]:  # fmt: skip
    """One row of ``images.csv`` (columns :data:`RESULTS_COLUMNS`) for a finished run."""
    if score_name not in (SCORE_FID, SCORE_STANDIN):
        raise ValueError(f"score_name must be {SCORE_FID!r} or {SCORE_STANDIN!r}, got {score_name!r}")
    return {"dataset": data.name, "model": run.kind, "mollifier": run.mode, "seed": seed, "score_name": score_name,
            "score": round(float(score), 4), "epochs": run.epochs, "steps": run.steps, "width": width,
            "profile": profile, "precision": run.precision, "skipped_steps": run.skipped_steps,
            "seconds_per_step": round(run.seconds_per_step, 6), "device": run.device,
            "commit": git_commit() if commit is None else commit, "date": dt.date.today().isoformat()}  # fmt: skip


def append_result(path: Union[str, Path], row: dict[str, Any]) -> Path:
    """Append ``row`` to the CSV ``path`` (header written when the file is new); only the full profile may write.

    Quick-profile numbers never go into ``book/results``: a row with ``profile != "full"``
    raises ``ValueError``.
    """
    if row.get("profile") != "full":
        raise ValueError(f"only full-profile runs are recorded in the results file, got profile={row.get('profile')!r}")
    missing = [c for c in RESULTS_COLUMNS if c not in row]
    if missing:
        raise ValueError(f"row lacks the columns {missing}")
    return append_csv_rows(path, [row], list(RESULTS_COLUMNS))


def recorded_runs(path: Union[str, Path]) -> set[tuple[str, str, str, int, int, float]]:
    """``(dataset, model, mollifier, seed, epochs, width)`` of the rows already in the results file (empty if none)."""
    path = Path(path)
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {(r["dataset"], r["model"], r["mollifier"], int(r["seed"]), int(r["epochs"]), float(r["width"]))
                for r in csv.DictReader(f)}  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Full-profile runs from the command line: train, score with FID (Inception), append to the results file.

    Runs already in the results file (same data set, model, mollifier, seed, epochs and
    width) are skipped; an interrupted run resumes from its folder under ``--checkpoints``.
    """
    from .data.images import load_images
    from .fid import fid, inception_extractor, reference_statistics
    from .runtime import pick_device
    from .vae import VAE_KINDS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "celeba"])
    p.add_argument("--models", nargs="+", default=list(VAE_KINDS), choices=list(VAE_KINDS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--epochs", type=int, default=None, help="default: the paper's (200 CIFAR-10, 100 CelebA)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the Table 5 nets (paper: 1)")
    p.add_argument("--samples", type=int, default=50_000, help="generated images for FID (paper: 50,000)")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto: bf16 on Ampere+ GPUs, fp16 with loss scaling on older ones (T4), fp32 on a CPU")
    p.add_argument("--checkpoints", default="checkpoints/images", help="resume folder (one subfolder per run)")
    p.add_argument("--out", default=str(_REPO / "book" / "results" / "images.csv"))
    args = p.parse_args(argv)
    device = pick_device()
    epochs = args.epochs or {"cifar10": 200, "celeba": 100}[args.dataset]
    data = load_images(args.dataset)
    extractor = inception_extractor(device)
    ref = reference_statistics(data, extractor, device=device)
    done = recorded_runs(args.out)
    for kind in args.models:
        for mode in args.modes:
            if (data.name, kind, mode, args.seed, epochs, args.width) in done:
                print(f"{data.name}/{kind}/{mode}: already in {args.out}, skipped")
                continue
            run = train_image_vae(kind, mode, data, epochs=epochs, seed=args.seed, device=device, progress=True,
                                  precision=args.precision, width=args.width,
                                  resume_dir=Path(args.checkpoints) / f"{data.name}-{kind}-{mode}-seed{args.seed}")  # fmt: skip
            score = fid(sample_images(run.model, args.samples, seed=args.seed), ref, extractor, device=device)
            append_result(args.out, result_row(run, data, seed=args.seed, score_name=SCORE_FID, score=score, width=args.width,
                                               profile="full"))  # fmt: skip
            print(f"{data.name}/{kind}/{mode}: FID {score:.2f}, {run.seconds_per_step * 1e3:.1f} ms/step ({run.precision})")


if __name__ == "__main__":  # pragma: no cover
    main()
