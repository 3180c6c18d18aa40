"""Measured time of one training step of the paper-size image VAEs, and what a full run costs.

For each VAE of ``molli_utils.models.vae.make_vae`` (width 1 = the paper's Table 5 nets, latent
256) and each precision, ``molli_utils.experiments.images.run`` trains for two short
epochs on random images -- the same code path as a real run: pythae's loop,
``MollifiedTrainer`` with Gaussian mollification active, Adam -- and the step time is
taken from the *second* epoch (the first includes warm-up: allocation, cuDNN's search).
No data set and no network are needed, so the command runs on any GPU machine.

Printed: milliseconds per step and the hours of a full run (default: CIFAR-10, 200
epochs of 50,000 images at batch 128 = 78,200 steps; ``--size 64 --train-size 162770
--epochs 100`` for CelebA). On Colab with a T4 this *is* the T4 estimate of the image
chapter; on a CPU the default batch is small (8) and the hours are extrapolated
linearly to batch 128 (stated in the output).

Run:  make bench      (or: python -m benchmarks.bench_vae_steps --device cuda --batch 128)
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.bench_vae_flops import add_full_run_arguments, full_run_steps
from molli_utils.data.images import ImageData
from molli_utils.experiments import images
from molli_utils.models.vae import VAE_KINDS
from molli_utils.runtime import pick_device
from molli_utils.training.vae import PRECISIONS, quiet_pythae, resolve_precision


def synthetic_images(n: int, size: int, seed: int = 0) -> ImageData:
    """``n`` uniform random ``3 x size x size`` images, named so that no output can pass them off as data."""
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return ImageData("synthetic-uniform", "train", images, "random pixels, for timing only")


def time_step(
    kind: str,
    precision: str,
    device: torch.device,
    *,
    batch: int,
    steps: int,
    size: int = 32,
    width: float = 1.0,
    latent_dim: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Seconds per training step: the second epoch's time / ``steps`` (pythae's loop times no single step).

    Also the first epoch's time (warm-up), the steps skipped by fp16 loss scaling, and the precision used.
    """
    data = synthetic_images(batch * steps, size, seed)
    config = images.ImageRun(
        kind,
        "gaussian",
        seed,
        epochs=2,
        batch_size=batch,
        latent_dim=latent_dim,
        width=width,
        fraction=1.0,
        precision=precision,
    )
    run = images.run(config, data=data, device=device)
    return {
        "seconds_per_step": run.epoch_seconds[-1] / steps,
        "warmup_seconds": run.epoch_seconds[0],
        "skipped_steps": run.skipped_steps,
        "precision": run.precision,
    }


def main(argv: list[str] | None = None) -> dict[tuple[str, str], float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="default: CUDA if available, else CPU ($MOLLI_DEVICE overrides)")
    parser.add_argument("--models", nargs="+", default=list(VAE_KINDS), choices=list(VAE_KINDS))
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "auto"],
        choices=list(PRECISIONS),
        help="auto: bf16 on Ampere+, fp16 on a T4, fp32 on a CPU (then bf16 is timed instead)",
    )
    parser.add_argument("--batch", type=int, default=None, help="default: 128 on a GPU (paper), 8 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 on a GPU, 2 on a CPU)")
    parser.add_argument("--size", type=int, default=32, choices=[32, 64], help="image size (CIFAR-10 32, CelebA 64)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = paper)")
    add_full_run_arguments(parser, "--run-batch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_pythae()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (args.run_batch if gpu else 8)
    steps = args.steps or (20 if gpu else 2)
    precisions = []
    for p in args.precisions:  # on a CPU "auto" is fp32: time bf16 instead, the other autocast option there
        p = resolve_precision(p, device) if gpu or p != "auto" else "bf16"
        if p not in precisions:
            precisions.append(p)
    run_steps = full_run_steps(args.epochs, args.train_size, args.run_batch)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {args.threads} thread(s)"
    scale = args.run_batch / batch
    print(
        f"{name}: full-width VAEs (width {args.width:g}) on random 3x{args.size}x{args.size} images, batch {batch}, "
        f"second of two epochs of {steps} steps; full run = {args.epochs} epochs x {args.train_size:,} images at "
        f"batch {args.run_batch} = {run_steps:,} steps"
    )
    if scale != 1:
        print(
            f"EXTRAPOLATED: hours assume the step time grows linearly from batch {batch} to {args.run_batch} (x{scale:g})"
        )
    print(f"  {'model':9s} {'precision':9s} {'ms/step':>9s} {'warm-up s':>9s} {'skipped':>7s} {'h per run':>9s}")
    out = {}
    for kind in args.models:
        for p in precisions:
            r = time_step(kind, p, device, batch=batch, steps=steps, size=args.size, width=args.width)
            hours = r["seconds_per_step"] * scale * run_steps / 3600
            out[kind, p] = r["seconds_per_step"]
            print(
                f"  {kind:9s} {p:9s} {1e3 * r['seconds_per_step']:9.1f} {r['warmup_seconds']:9.1f} "
                f"{r['skipped_steps']:7d} {hours:9.1f}"
            )
    if len(precisions) == 2:
        a, b = precisions
        ratios = [out[k, a] / out[k, b] for k in args.models]
        print(
            f"step time {a} / {b}: median {statistics.median(ratios):.2f} "
            f"(per model: {', '.join(f'{k} {r:.2f}' for k, r in zip(args.models, ratios))})"
        )
    return out


if __name__ == "__main__":
    main()
