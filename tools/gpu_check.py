"""The prepared GPU check (issue 29): every GPU code path of the image chapters once on CUDA, with step times.

Device tool, one line (from the repository root; not run on a GPU yet: 1-2 minutes expected, an estimate,
and at most 6 by the watchdog; the lent GPU machines have no network, so the packages their image lacks
travel as wheels in ``.whl/gpu-check``, made here as shown below; their image's ``python3`` holds torch with
CUDA)::

    run(command="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/gpu-check/*.whl && PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 -m tools.gpu_check --json $OUT/gpu_check.json", carry=[".whl/gpu-check"], timeout_s=480)

On a GPU machine with network: ``make gpu-check`` (``make install`` builds .venv first, then
``.venv/bin/python -m tools.gpu_check``). On a CPU, to test this script: ``python -m tools.gpu_check --device
cpu --smoke``: 18-21 s wall on the 2 cores here (load average 9, other jobs running; 11-13 s of it in the
paths, the rest imports), 1.3 GB peak memory; ``tests/test_gpu_check.py`` runs it. Without CUDA and without
``--smoke`` it refuses at once (exit 2).

The wheels, here, once (3 MB; ``.whl/`` is git-ignored; the image already holds torch, torchvision, numpy,
scipy, scikit-learn, pandas, matplotlib, tqdm, imageio, cloudpickle and pillow; normflows is an sdist only
on PyPI, so pip builds its pure-Python wheel)::

    rm -rf .whl/gpu-check && mkdir -p .whl/gpu-check
    .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        -d .whl/gpu-check pythae==0.1.2 pytorch-fid==0.3.0 pydantic==2.14.4 pydantic-core==2.50.5 \\
        annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
    .venv/bin/python -m pip wheel --no-deps -w .whl/gpu-check normflows==1.7.3

(the versions of this checkout's .venv). Never carry pythae's ``dataclasses`` requirement: that wheel is a
Python 3.6 backport whose ``dataclasses.py`` would shadow the standard library's from ``PYTHONPATH``. Tried
here: with these wheels installed by that command (cp311 builds) and ``python -S`` on a site-packages
without pythae, normflows, pytorch-fid, pydantic and the installed molli_utils, the smoke run passes.

What runs (``--only`` picks some; every path runs even when an earlier one failed, and all failures are
reported together at the end):

* ``vae-fp32``, ``vae-bf16``, ``vae-fp16``: chapter 6's path, :func:`molli_utils.experiments.images.run` of one
  VAE (``--vae``, default ``vae``) in the ``colab`` profile (:func:`~molli_utils.experiments.settings.images`:
  width 0.25, batch 128, latent 256), Gaussian mollification over every step (``fraction=1``), through pythae
  and :class:`~molli_utils.training.vae.MollifiedTrainer` with ``precision`` fp32, bf16 and fp16 (autocast; fp16
  with the gradient scaler), on random CIFAR-shaped images (``[N, 3, 32, 32]`` float32 in ``[0, 1]``, 256 grey
  levels: what :func:`~molli_utils.data.images.load_images` returns). Two epochs of ``--steps`` steps; the
  time per step is the second epoch's (the first holds allocation and cuDNN's search: the warm-up column).
* ``flow-fp32``: chapter 6b's path, ``images.run`` of one flow (``--flow``, default ``glow``: K = 20, L = 3, width
  0.25, batch 64) through the book's loop with :class:`~molli_utils.training.batch.FlowBatches` (dequantisation
  and mollification per batch), then test bits per dimension on random images. The flows have no
  mixed-precision option: fp32 only.
* ``inception-fp32``: pytorch-fid's ``InceptionV3`` (the FID architecture, its weight download patched out:
  random weights) built by :func:`molli_utils.fid.inception_extractor`, timed on a batch through
  :func:`molli_utils.fid.features` (``--inception-batch`` images, resized to 299 x 299 inside).
* ``ddp-flow``, ``ddp-vae``: the same flow and VAE runs with DistributedDataParallel, world size 1, on NCCL
  (gloo on a CPU), the process group started from a ``file://`` store: the multi-process code of
  :mod:`molli_utils.training.distributed` (DistributedLoss's all-reduce, the global-batch actnorm
  initialisation, barriers) and MollifiedTrainer's own DDP wrapping are switched on for the one rank.

Printed: one table row per path -- what ran, the device's name, the dtype, the steps timed, ms per step,
the warm-up seconds, the peak memory (CUDA: ``torch.cuda.max_memory_allocated`` during that path; CPU: the
process's peak resident memory so far) and the status -- then every failure's traceback summary.
``--json FILE`` also writes the rows. ``--budget-s`` (default 300): a path starts only while the elapsed
time is under it (the others are listed as cut off), and a watchdog ends the process at the budget plus
``--grace-s`` (default 60), after printing the table with the path still running marked FAILED, so the
check ends inside 6 minutes whatever hangs (a stuck NCCL start, say).

``--smoke``: the same paths tiny (batch 4, 2 steps per epoch, a 1/32-width VAE with latent 16, the
miniature's flow sizes, 2 images through Inception); with ``--device cpu`` gloo replaces NCCL and fp16
is skipped with its reason (its autocast and gradient scaler are the GPU path).

Exit status: 0 every selected path ran (or was skipped for a stated reason); 1 a path failed (or was still
running when the watchdog struck); 2 refused (no CUDA, or bad arguments); 3 nothing failed but the budget
cut paths off before they started.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

#: The paths, in the order they run (DDP last: a hung NCCL start is left to the watchdog).
PATHS = ("vae-fp32", "vae-bf16", "vae-fp16", "flow-fp32", "inception-fp32", "ddp-flow", "ddp-vae")
EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INCOMPLETE = 0, 1, 2, 3


@dataclass(frozen=True)
class Sizes:
    """How big each path runs. ``None``: the colab profile's own value."""

    steps: int  # steps per epoch (two epochs; the second is timed)
    batch: Optional[int] = None
    vae_width: Optional[float] = None
    latent_dim: Optional[int] = None
    dataset: Optional[str] = None  # the flows' sizes follow the data set: a non-paper one gets the miniature's
    inception_batch: int = 500
    inception_reps: int = 3


FULL = Sizes(steps=10)
SMOKE = Sizes(
    steps=2,
    batch=4,
    vae_width=1 / 32,
    latent_dim=16,
    dataset="sklearn-sample-patches",
    inception_batch=2,
    inception_reps=1,
)


@dataclass
class Row:
    """One line of the table."""

    path: str
    what: str = ""
    device: str = ""
    dtype: str = ""
    steps: int = 0
    ms_per_step: float = math.nan
    warmup_s: float = math.nan
    peak_mib: float = math.nan
    status: str = "not run"
    note: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"


def one_rank_context():
    """A :class:`~molli_utils.training.distributed.Context` of world size 1 whose multi-process code paths are on
    (``distributed`` is True): DistributedDataParallel, all-reduce and barriers run on the one rank."""
    from molli_utils.training.distributed import Context

    class OneRankDDP(Context):
        @property
        def distributed(self) -> bool:
            return True

    return OneRankDDP(rank=0, world_size=1, local_rank=0)


def random_images(n: int, seed: int = 0):
    """``n`` random CIFAR-shaped images as :func:`~molli_utils.data.images.load_images` returns them: float32
    ``[n, 3, 32, 32]`` in ``[0, 1]`` with 256 grey levels; named so that no output can pass them off as data."""
    from molli_utils.data.images import ImageData

    pixels = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))
    return ImageData("random-cifar-shaped", "train", pixels.float() / 255, "random pixels, for the GPU check only")


@contextlib.contextmanager
def counting_ddp_forwards():
    """Counts the forward passes through any DistributedDataParallel module (``[count]``)."""
    from torch.nn.parallel import DistributedDataParallel

    count, real = [0], DistributedDataParallel.forward

    def forward(self, *args, **kwargs):
        count[0] += 1
        return real(self, *args, **kwargs)

    DistributedDataParallel.forward = forward
    try:
        yield count
    finally:
        DistributedDataParallel.forward = real


@contextlib.contextmanager
def random_weight_inception():
    """pytorch-fid's FID Inception-v3 with its weight download replaced by the model's own random weights
    (``fid_inception_v3`` builds the architecture, then loads the state dict it is handed)."""
    import pytorch_fid.inception as inc

    built: dict[str, torch.nn.Module] = {}
    real_build, real_load = inc._inception_v3, inc.load_state_dict_from_url

    def build(*args, **kwargs):
        built["model"] = real_build(*args, **kwargs)
        return built["model"]

    def load(*args, **kwargs):
        return built["model"].state_dict()  # the model being built: loading it changes nothing

    inc._inception_v3, inc.load_state_dict_from_url = build, load
    try:
        yield
    finally:
        inc._inception_v3, inc.load_state_dict_from_url = real_build, real_load


class Check:
    """Runs the paths on one device and keeps the rows."""

    def __init__(
        self,
        device: torch.device,
        sizes: Sizes,
        *,
        vae: str = "vae",
        flow: str = "glow",
        fail: Sequence[str] = (),
        hang: Sequence[str] = (),
        log: Callable[[str], None] = print,
    ):
        self.device, self.sizes, self.vae_kind, self.flow_kind = device, sizes, vae, flow
        self.fail, self.hang, self.log = set(fail), set(hang), log
        self.cuda = device.type == "cuda"
        threads = torch.get_num_threads()
        self.device_name = (
            torch.cuda.get_device_name(device) if self.cuda else f"CPU ({platform.machine()}, {threads} thread(s))"
        )
        self.rows: list[Row] = []
        self.current: Optional[Row] = None
        self._group_dir: Optional[str] = None

    # ---- configuration -------------------------------------------------------------------------------
    def config(self, model: str, precision: str = "auto"):
        """The colab profile's run of ``model``, mollified throughout, two epochs (smoke: tiny)."""
        from molli_utils.experiments import settings

        s = self.sizes
        fields: dict[str, Any] = {
            "mode": "gaussian",
            "seed": 1,
            "epochs": 2,
            "fraction": 1.0,
            "snapshot_epochs": (),
            "precision": precision,
        }
        if s.batch is not None:
            fields["batch_size"] = s.batch
        if s.dataset is not None:
            fields["dataset"] = s.dataset
        if s.latent_dim is not None:
            fields["latent_dim"] = s.latent_dim
        if s.vae_width is not None and model not in ("realnvp", "glow"):
            fields["width"] = s.vae_width
        return settings.images("colab", model=model, **fields)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    # ---- the paths -----------------------------------------------------------------------------------
    def vae(self, row: Row, precision: str, dist: Any = None) -> None:
        from molli_utils.experiments import images
        from molli_utils.training.vae import quiet_pythae

        quiet_pythae()
        config = self.config(self.vae_kind, precision)
        steps = self.sizes.steps
        row.what = (
            f"{config.model}: pythae + MollifiedTrainer, b{config.batch_size} w{config.width:g} z{config.latent_dim}"
        )
        row.dtype = precision
        device = torch.device("cuda", self.device.index or 0) if dist is not None and self.cuda else self.device
        result = images.run(config, data=random_images(config.batch_size * steps), device=device, dist=dist)
        if result.epochs_run != 2 or len(result.epoch_seconds) != 2:
            raise RuntimeError(f"expected 2 epochs, ran {result.epochs_run} ({result.epoch_seconds})")
        if result.precision != precision:
            raise RuntimeError(f"asked for {precision}, the run trained in {result.precision}")
        losses = result.losses if precision != "fp16" else result.losses[-1:]  # fp16: early steps may overflow
        if not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"non-finite epoch losses {result.losses}")
        row.steps, row.ms_per_step, row.warmup_s = (
            steps,
            1e3 * result.epoch_seconds[-1] / steps,
            result.epoch_seconds[0],
        )
        row.note = f"loss {result.losses[-1]:.4g}, {result.horizon} mollified steps, {self.samples(result.model)}"
        if precision == "fp16":
            row.note += f", {result.skipped_steps} skipped by the loss scaler"

    def flow_run(self, row: Row, dist: Any = None) -> None:
        from molli_utils.experiments import images

        config = self.config(self.flow_kind)
        steps = self.sizes.steps
        marks: list[float] = []

        def mark(epoch: int, model) -> None:
            self._sync()
            marks.append(time.perf_counter())

        device = torch.device("cuda", self.device.index or 0) if dist is not None and self.cuda else self.device
        start = time.perf_counter()
        result = images.run(
            config,
            data=random_images(config.batch_size * steps),
            device=device,
            callback=mark,
            test=random_images(config.batch_size, seed=1),
            dist=dist,
        )
        net = result.model.sizes
        row.what = f"{config.model}: train + FlowBatches, b{config.batch_size} K{net.depth} L{net.levels} h{net.hidden}"
        row.dtype = "fp32"
        if len(marks) != 2:
            raise RuntimeError(f"expected 2 epochs, the callback ran {len(marks)} times")
        if not all(math.isfinite(v) for v in result.losses) or not math.isfinite(result.bpd):
            raise FloatingPointError(f"non-finite losses {result.losses} or bits/dim {result.bpd}")
        if result.skipped_steps:
            raise FloatingPointError(f"{result.skipped_steps} of {result.steps} steps had non-finite losses")
        row.steps, row.ms_per_step, row.warmup_s = steps, 1e3 * (marks[1] - marks[0]) / steps, marks[0] - start
        row.note = (
            f"loss {result.losses[-1]:.4g}, test {result.bpd:.3f} bits/dim, {result.horizon} mollified steps, "
            f"{self.samples(result.model)}"
        )

    def samples(self, model) -> str:
        """16 samples through :func:`molli_utils.experiments.images.sample` (the chapters' snapshots), checked."""
        from molli_utils.experiments import images

        x = images.sample(model, 16, seed=7)
        if x.shape != (16, 3, 32, 32) or not torch.isfinite(x).all():
            raise RuntimeError(f"samples of shape {tuple(x.shape)} (finite: {bool(torch.isfinite(x).all())})")
        return "16 samples drawn"

    def inception(self, row: Row) -> None:
        from molli_utils import fid as F

        n, reps = self.sizes.inception_batch, self.sizes.inception_reps
        row.what, row.dtype = f"pytorch-fid InceptionV3 (random weights), b{n} 32->299 px", "fp32"
        with random_weight_inception():
            extractor = F.inception_extractor(self.device)
        x = random_images(n, seed=2).images
        start = time.perf_counter()
        feats = F.features(x, extractor, batch_size=n, device=self.device)  # warm-up (features() ends on the CPU)
        row.warmup_s = time.perf_counter() - start
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            feats = F.features(x, extractor, batch_size=n, device=self.device)
            times.append(time.perf_counter() - start)
        if feats.shape != (n, 2048) or not torch.isfinite(feats).all():
            raise RuntimeError(f"features of shape {tuple(feats.shape)} (finite: {bool(torch.isfinite(feats).all())})")
        best = min(times)
        row.steps, row.ms_per_step = reps, 1e3 * best
        row.note = f"{n / best:,.0f} images/s (best of {reps} batches)"

    def process_group(self) -> Any:
        """Start the one-rank process group (NCCL on CUDA, else gloo) from a ``file://`` store, once."""
        import datetime

        import torch.distributed as dist

        if not dist.is_initialized():
            self._group_dir = tempfile.mkdtemp(prefix="molli-gpu-check-")
            backend = "nccl" if self.cuda else "gloo"
            if self.cuda:
                torch.cuda.set_device(self.device.index or 0)
            try:
                dist.init_process_group(
                    backend,
                    init_method=f"file://{self._group_dir}/store",
                    rank=0,
                    world_size=1,
                    timeout=datetime.timedelta(seconds=120),
                )
            except BaseException:
                self.close()
                raise
        probe = torch.ones(1, device=self.device)
        dist.all_reduce(probe)
        if probe.item() != 1.0:
            raise RuntimeError(f"all_reduce over one rank gave {probe.item()}, not 1")
        return one_rank_context()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if self._group_dir is not None:
            import shutil

            shutil.rmtree(self._group_dir, ignore_errors=True)
            self._group_dir = None

    def ddp(self, row: Row, which: str) -> None:
        import torch.distributed as dist

        ctx = self.process_group()
        with counting_ddp_forwards() as forwards:
            if which == "flow":
                self.flow_run(row, dist=ctx)
            else:
                self.vae(row, "fp32", dist=ctx)
        row.what = f"DDP ws=1 {dist.get_backend()}: {row.what}"
        if forwards[0] < 2 * self.sizes.steps:  # one forward per training step at least
            raise RuntimeError(
                f"DistributedDataParallel ran {forwards[0]} forward passes in {2 * self.sizes.steps} steps"
            )
        row.note += f", {forwards[0]} DDP forward passes"

    # ---- running -------------------------------------------------------------------------------------
    def describe(self, path: str) -> tuple[str, str]:
        """What ``path`` runs and its dtype, before it runs (the paths themselves give the sizes)."""
        if path.startswith("vae-"):
            return f"{self.vae_kind}: pythae + MollifiedTrainer", path.split("-", 1)[1]
        if path == "flow-fp32":
            return f"{self.flow_kind}: train + FlowBatches", "fp32"
        if path == "inception-fp32":
            return "pytorch-fid InceptionV3 (random weights)", "fp32"
        backend = "nccl" if self.cuda else "gloo"
        model = self.flow_kind if path == "ddp-flow" else self.vae_kind
        return f"DDP ws=1 {backend}: {model}", "fp32"

    def skip_reason(self, path: str) -> Optional[str]:
        if path == "vae-fp16" and not self.cuda:
            return "fp16 autocast with the gradient scaler is the GPU path; not run on the CPU"
        if path == "vae-bf16" and not self.cuda:
            return None  # CPU autocast runs bf16
        if path == "vae-bf16" and not torch.cuda.is_bf16_supported():
            return f"{self.device_name} has no bfloat16"
        return None

    def run_path(self, path: str) -> Row:
        what, dtype = self.describe(path)
        row = Row(path, what=what, dtype=dtype, device=self.device_name)
        self.rows.append(row)
        reason = self.skip_reason(path)
        if reason is not None:
            row.status, row.note = "skipped", reason
            return row
        self.current = row
        if self.cuda:
            self._sync()
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                if path in self.fail:
                    raise RuntimeError(f"injected failure (--fail {path})")
                while path in self.hang:
                    time.sleep(0.1)
                if path.startswith("vae-"):
                    self.vae(row, path.split("-", 1)[1])
                elif path == "flow-fp32":
                    self.flow_run(row)
                elif path == "inception-fp32":
                    self.inception(row)
                elif path in ("ddp-flow", "ddp-vae"):
                    self.ddp(row, path.split("-", 1)[1])
                else:
                    raise ValueError(f"unknown path {path!r}")
                self._sync()
                row.status = "ok"
            except BaseException as err:  # noqa: BLE001  (reported, and the other paths still run)
                if isinstance(err, KeyboardInterrupt):
                    raise
                row.status = "FAILED"
                row.error = f"{type(err).__name__}: {err}"
                self.log(f"--- {path} FAILED after {time.perf_counter() - start:.1f} s:")
                self.log("".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip())
        row.warnings = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught})
        row.peak_mib = (torch.cuda.max_memory_allocated(self.device) if self.cuda else _peak_rss()) / 2**20
        self.current = None
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
        self.log(f"{path}: {row.status} ({time.perf_counter() - start:.1f} s)")
        return row


def _peak_rss() -> float:
    """The process's peak resident memory in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def _num(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "-"


def table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width table."""
    head = ("path", "what ran", "device", "dtype", "steps", "ms/step", "warm-up s", "peak MiB", "status")
    body = [
        (
            r.path,
            r.what,
            r.device,
            r.dtype,
            str(r.steps or "-"),
            _num(r.ms_per_step, ".1f"),
            _num(r.warmup_s, ".1f"),
            _num(r.peak_mib, ",.0f"),
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    right = {4, 5, 6, 7}
    lines = [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
        for line in (head, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.path}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["notes:"] + notes if notes else []))


def _versions() -> str:
    from importlib import metadata

    parts = [f"torch {torch.__version__}"]
    if torch.version.cuda:
        parts.append(f"CUDA {torch.version.cuda}")
    if torch.backends.cudnn.is_available():
        parts.append(f"cuDNN {torch.backends.cudnn.version()}")
    with contextlib.suppress(Exception):
        if torch.cuda.is_available():
            parts.append("NCCL " + ".".join(map(str, torch.cuda.nccl.version())))
    for name in ("pythae", "normflows", "pytorch-fid", "pydantic"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} MISSING")
    return ", ".join(parts)


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cuda:N; cpu only with --smoke")
    parser.add_argument("--smoke", action="store_true", help="every path tiny (the CPU test of this script)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PATHS,
        default=None,
        metavar="PATH",
        help=f"run these paths only (default: all of {', '.join(PATHS)})",
    )
    parser.add_argument("--vae", default="vae", help="the VAE (default vae; vae_iaf, iwae, beta_vae, hvae)")
    parser.add_argument("--flow", default="glow", choices=("glow", "realnvp"), help="the image flow (default glow)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch, two epochs (default 10; smoke 2)")
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="no path starts after this many seconds (default 300)"
    )
    parser.add_argument(
        "--grace-s", type=float, default=60.0, help="the watchdog ends the check at budget + grace seconds (default 60)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's; smoke on a CPU: 1)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--fail",
        nargs="+",
        choices=PATHS,
        default=(),
        metavar="PATH",
        help="for tests: raise an error at the start of these paths (the failure report)",
    )
    parser.add_argument(
        "--hang",
        nargs="+",
        choices=PATHS,
        default=(),
        metavar="PATH",
        help="for tests: these paths sleep until the watchdog ends the check (a stuck path)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the check; returns the exit status (see the module docstring)."""
    args = parse(argv)
    start = time.perf_counter()
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        print(f"gpu_check: error: bad --device {args.device!r} ({err})", file=sys.stderr)
        return EXIT_REFUSED
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: error: no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False); "
            "this check needs a GPU machine. To test the script on a CPU: python -m tools.gpu_check --device cpu "
            "--smoke",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if device.type not in ("cuda", "cpu"):
        print(f"gpu_check: error: --device must be cuda, cuda:N or cpu, got {args.device!r}", file=sys.stderr)
        return EXIT_REFUSED
    if device.type == "cpu" and not args.smoke:
        print("gpu_check: error: --device cpu runs only with --smoke (the full sizes are GPU work)", file=sys.stderr)
        return EXIT_REFUSED
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        print(f"gpu_check: error: {device} does not exist ({torch.cuda.device_count()} GPU(s))", file=sys.stderr)
        return EXIT_REFUSED
    if args.steps is not None and args.steps < 1:
        print(f"gpu_check: error: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return EXIT_REFUSED

    sizes = SMOKE if args.smoke else FULL
    if args.steps is not None:
        sizes = dataclasses.replace(sizes, steps=args.steps)
    threads = torch.get_num_threads()
    if args.threads is not None or (args.smoke and device.type == "cpu"):
        torch.set_num_threads(args.threads or 1)
    os.environ.setdefault("MOLLI_PROGRESS", "0")
    check = Check(device, sizes, vae=args.vae, flow=args.flow, fail=args.fail, hang=args.hang)
    paths = [p for p in PATHS if args.only is None or p in args.only]
    say = lambda s: print(s, flush=True)  # noqa: E731
    say(f"gpu_check on {check.device_name}: {_versions()}")
    if check.cuda:
        props = torch.cuda.get_device_properties(device)
        say(
            f"  {props.name}: compute capability {props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB, "
            f"bf16 {torch.cuda.is_bf16_supported()}; precision='auto' trains the VAEs in "
            f"{'bf16' if torch.cuda.is_bf16_supported(including_emulation=False) else 'fp16'}"
        )
    say(
        f"  {'SMOKE sizes' if args.smoke else 'colab profile'}: {sizes.steps} steps per epoch, 2 epochs (the second "
        f"timed); paths {', '.join(paths)}; budget {args.budget_s:g} s (+{args.grace_s:g} s grace)"
    )

    def finish(code: int, reason: str = "") -> int:
        failed = [r for r in check.rows if r.failed]
        code = EXIT_FAILED if failed else code
        say("")
        say(table(check.rows))
        say(
            "peak MiB: "
            + (
                "torch.cuda.max_memory_allocated during the path"
                if check.cuda
                else "the process's peak resident memory so far (CPU)"
            )
        )
        seen = sorted({w for r in check.rows for w in r.warnings})
        if seen:
            say("warnings (once each):")
            for w in seen[:20]:
                say(f"  {w}")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(
                json.dumps(
                    {
                        "device": check.device_name,
                        "versions": _versions(),
                        "smoke": args.smoke,
                        "seconds": round(time.perf_counter() - start, 1),
                        "exit": code,
                        "rows": [dataclasses.asdict(r) for r in check.rows],
                    },
                    indent=1,
                )
            )
        wall = time.perf_counter() - start
        if failed:
            say(f"gpu_check: FAILED: {len(failed)} of {len(check.rows)} paths on {check.device_name} ({wall:.0f} s):")
            for r in failed:
                say(f"  {r.path}: {r.error}")
        elif code == EXIT_INCOMPLETE:
            say(f"gpu_check: INCOMPLETE ({wall:.0f} s): {reason}; nothing that ran failed")
        else:
            ran = sum(r.status == "ok" for r in check.rows)
            say(
                f"gpu_check: OK: {ran} of {len(check.rows)} paths ran on {check.device_name} in {wall:.0f} s"
                + (f" ({len(check.rows) - ran} skipped, reasons in the notes)" if ran < len(check.rows) else "")
            )
        sys.stdout.flush()
        return code

    def not_started(path: str, why: str) -> None:
        what, dtype = check.describe(path)
        check.rows.append(Row(path, what=what, dtype=dtype, device=check.device_name, status=f"not started: {why}"))

    def watchdog() -> None:
        row = check.current
        if row is not None:
            row.status, row.error = "FAILED", f"still running at the hard limit ({args.budget_s + args.grace_s:g} s)"
        for path in paths[len(check.rows) :]:
            not_started(path, "watchdog")
        os._exit(finish(EXIT_INCOMPLETE, "the watchdog stopped the check at the hard limit"))

    timer = threading.Timer(max(0.0, args.budget_s + args.grace_s), watchdog)
    timer.daemon = True
    timer.start()
    cut = []
    try:
        for path in paths:
            if time.perf_counter() - start > args.budget_s:
                not_started(path, "budget")
                cut.append(path)
                continue
            check.run_path(path)
    finally:
        timer.cancel()
        with contextlib.suppress(Exception):
            check.close()
        torch.set_num_threads(threads)
    if cut:
        return finish(EXIT_INCOMPLETE, f"the budget ({args.budget_s:g} s) cut off {', '.join(cut)}")
    return finish(EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
