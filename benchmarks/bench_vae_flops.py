"""How long a full paper-size image VAE or flow run needs on a GPU, from counted FLOPs (a planning bound).

For each VAE of ``molli_utils.models.vae.make_vae`` at full width (the paper's Table 5 conv nets,
latent 256), ``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of one training
step (forward and backward) on a small batch, scaled linearly to the paper's batch of 128.
Multiplied by the steps of a full run (paper: 200 epochs of the 50,000 CIFAR-10 training
images) and divided by a GPU's throughput, this gives the *least* time a run can take
(``--utilisation 1``) and a more realistic figure at a fraction of the peak. It is not a
measurement on a GPU: a measured step time replaces it where a GPU is at hand.

The same for the two flows of Table 1 at the paper's size (``molli_utils.models.image_flows``):
REAL-NVP (100 epochs of batch 64) and GLOW as the official code trains it (50,000 iterations of
batch 64), counting ``forward_kld`` and its backward pass (:func:`flow_step_flops`).

Also printed: the measured CPU time of one such step on this machine.

Run:  make bench      (or: python -m benchmarks.bench_vae_flops --help)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from pythae.data.datasets import DatasetOutput
from torch.utils.flop_counter import FlopCounterMode

from molli_utils.models.image_flows import FLOW_KINDS, make_image_flow
from molli_utils.models.vae import VAE_KINDS, make_vae

#: Optimiser steps of the paper's full flow runs on CIFAR-10 (batch 64, the last partial batch dropped):
#: REAL-NVP 100 epochs of 781 steps (Appendix D.3.2), GLOW 50,000 iterations (the official code's 30,000 + 20,000).
FLOW_STEPS = {"realnvp": 100 * (50_000 // 64), "glow": 50_000}


def step_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """FLOPs of one forward + backward pass of a pythae model on ``batch``."""
    with FlopCounterMode(display=False) as counter:
        model(DatasetOutput(data=batch)).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def flow_step_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """FLOPs of one forward + backward pass of a normflows model's ``forward_kld`` on ``batch`` (in ``[-1, 1]``)."""
    model.forward_kld(batch)  # GLOW's actnorm initialises on its first batch (not counted)
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        model.forward_kld(batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_seconds(model: torch.nn.Module, batch: torch.Tensor, repeats: int) -> float:
    """Median wall time of ``repeats`` forward + backward passes (after one warm-up pass)."""
    times = []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        model(DatasetOutput(data=batch)).loss.backward()
        model.zero_grad(set_to_none=True)
        if rep:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def add_full_run_arguments(parser: argparse.ArgumentParser, batch_flag: str = "--batch") -> None:
    """The options that size a full paper run: epochs, training images, batch (defaults: CIFAR-10)."""
    parser.add_argument(
        "--epochs", type=int, default=200, help="epochs of the full run (paper: 200 CIFAR-10, 100 CelebA)"
    )
    parser.add_argument(
        "--train-size", type=int, default=50_000, help="training images (CIFAR-10 50,000; CelebA 162,770)"
    )
    parser.add_argument(batch_flag, type=int, default=128, help="batch of the full run (paper: 128)")


def full_run_steps(epochs: int, train_size: int, batch: int) -> int:
    """Optimiser steps of a full run; pythae keeps the last partial batch of an epoch."""
    return epochs * math.ceil(train_size / batch)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count-batch", type=int, default=8, help="batch the FLOPs are counted on (scaled to --batch)")
    add_full_run_arguments(parser)
    parser.add_argument("--tflops", type=float, default=8.1, help="GPU peak, TFLOPS (T4 fp32: 8.1; T4 fp16: 65)")
    parser.add_argument("--utilisation", type=float, default=0.4, help="fraction of the peak for the realistic figure")
    parser.add_argument("--repeats", type=int, default=3, help="CPU steps timed per model (median)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = full_run_steps(args.epochs, args.train_size, args.batch)
    x = torch.rand(args.count_batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    print(
        f"Full-width VAEs on 3x32x32, batch {args.batch}, {args.epochs} epochs = {steps:,} steps; "
        f"GPU at {args.tflops} TFLOPS peak"
    )
    print(
        f"  {'model':9s} {'GFLOP/step':>11s} {'CPU s/step':>11s} {'h at peak':>10s} "
        f"{'h at ' + format(args.utilisation, '.0%'):>10s}"
    )
    hours = {}
    for kind in VAE_KINDS:
        torch.manual_seed(0)
        model = make_vae(kind, (3, 32, 32)).train()
        flops = step_flops(model, x) * args.batch / args.count_batch
        cpu = step_seconds(model, x, args.repeats)
        peak_h = flops * steps / (args.tflops * 1e12) / 3600
        hours[kind] = peak_h / args.utilisation
        print(
            f"  {kind:9s} {flops / 1e9:11.0f} {cpu:11.2f} {peak_h:10.1f} {hours[kind]:10.1f}"
            f"   (CPU step on a batch of {args.count_batch}, {args.threads} thread(s))"
        )
    print(
        f"Paper-size flows on 3x32x32, batch 64: REAL-NVP {FLOW_STEPS['realnvp']:,} steps, GLOW (official code) "
        f"{FLOW_STEPS['glow']:,} steps; ESTIMATE from counted FLOPs, not measured on a GPU"
    )
    z = torch.rand(args.count_batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for kind in FLOW_KINDS:
        torch.manual_seed(0)
        model = make_image_flow(kind, (3, 32, 32)).train()
        flops = flow_step_flops(model, z) * 64 / args.count_batch
        peak_h = flops * FLOW_STEPS[kind] / (args.tflops * 1e12) / 3600
        hours[kind] = peak_h / args.utilisation
        print(f"  {kind:9s} {flops / 1e9:11.0f} {'':>11s} {peak_h:10.1f} {hours[kind]:10.1f}")
    return hours


if __name__ == "__main__":
    main()
