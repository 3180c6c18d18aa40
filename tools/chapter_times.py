"""How long each chapter takes: measured on this CPU per profile, and estimated for a free Colab T4 (colab profile).

    python -m tools.chapter_times measure --profile quick [--chapters 03_toys 05_report ...]
    python -m tools.chapter_times estimate        # the T4 estimate of the colab profile, from FLOP counts
    python -m tools.chapter_times table           # re-render the book's table from the measurements

``measure`` executes each chapter notebook top to bottom (one process, in a temporary folder, with
``MOLLI_PROFILE`` set) and records its wall time on this machine. ``estimate`` counts, on the CPU,
the FLOPs of what the colab profile of the GPU chapter trains and scores (the image VAEs, with
``torch.utils.flop_counter``, and the Inception-v3 forwards of FID) and turns them into minutes on a
T4 at :data:`UTILISATION` of its peak (fp16 tensor cores for the mixed-precision training, fp32 for
Inception), never less than the kernel-launch time of the counted operations. It is an estimate,
labelled as such: a measured T4 step time replaces it where a GPU is at hand
(``python -m benchmarks.bench_vae_steps``). The other chapters train small models on the CPU, on
Colab too, so their Colab time is their measured CPU time in the colab profile.

Both commands merge their rows into :data:`RESULTS` (one row per chapter, profile and kind,
replacing an older one) and re-render :data:`TABLE`, which ``book/runtimes.md`` shows.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
#: The measurements and estimates (long format), and the table the book page shows.
RESULTS = ROOT / "molli_utils" / "results" / "chapter_times.csv"  # package data: a chapter alone reads its costs
TABLE = ROOT / "book" / "runtime_data" / "table.csv"
COLUMNS = ["chapter", "profile", "kind", "seconds", "detail", "machine", "commit", "dirty", "date"]
PROFILES = ("quick", "colab", "full")

#: T4 peak throughput (TFLOPS) and the fraction of it assumed reachable.
T4_TFLOPS = {"fp32": 8.1, "fp16": 65.0}
UTILISATION = 0.4
#: Seconds per launched GPU kernel, the floor of a step made of many small operations.
LAUNCH_SECONDS = 10e-6


def chapters() -> list[Path]:
    """Every notebook of the book, in the order of ``_toc.yml``."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def _provenance() -> dict[str, Any]:
    """``commit``, ``dirty`` (uncommitted changes) and ``date``, as the experiments record them."""
    sys.path.insert(0, str(ROOT))
    from molli_utils.experiments.results import provenance

    return provenance(ROOT)


# --------------------------------------------------------------------------- measure


def measure(
    profile: str, paths: Iterable[Path], *, timeout: int = 4 * 3600, log: Callable[[str], None] = print
) -> list[dict]:
    """Execute each notebook in ``paths`` in ``profile`` and return one row per notebook with its wall time.

    A notebook that fails gets ``seconds`` empty and the error in ``detail``. The image chapter in
    the colab or full profile runs the quick profile on a machine without a CUDA GPU (it says so);
    its row says which profile actually ran.
    """
    import re

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    env = {**os.environ, "MOLLI_PROFILE": profile, "MPLBACKEND": "Agg"}
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        detail = ""
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="chapter-times-") as work:
            try:
                NotebookClient(
                    nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}
                ).execute(env=env)
            except CellExecutionError as err:
                detail = f"FAILED: {str(err).strip().splitlines()[-1][:200]}"
        seconds = time.perf_counter() - start
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        ran = re.findall(r"profile=(quick|colab|full)", text)
        if not detail and ran and ran[0] != profile:
            detail = f"ran the {ran[0]} profile: the {profile} profile of this chapter needs a CUDA GPU"
        rows.append(
            {
                "chapter": path.stem,
                "profile": profile,
                "kind": "measured, this CPU",
                "seconds": "" if detail.startswith("FAILED") else f"{seconds:.1f}",
                "detail": detail,
            }
        )
        log(f"{path.stem}: {seconds:.0f} s ({profile}){'; ' + detail if detail else ''}")
    return rows


# --------------------------------------------------------------------------- estimate


def count(fn: Callable[[], Any]) -> tuple[int, int]:
    """(FLOPs, aten operations) of one call of ``fn``, counted on the CPU; operations bound the kernel launches."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Ops(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    with FlopCounterMode(display=False) as flops, Ops() as ops:
        fn()
    return flops.get_total_flops(), ops.n


def gpu_seconds(flops: float, ops: float, precision: str) -> float:
    """Seconds on a T4: FLOPs at :data:`UTILISATION` of the ``precision`` peak, at least the launch time of ``ops``."""
    return max(flops / (UTILISATION * T4_TFLOPS[precision] * 1e12), ops * LAUNCH_SECONDS)


def inception_flops() -> tuple[int, int]:
    """(FLOPs, operations) of one Inception-v3 forward at 299 x 299 (torchvision's architecture, random weights)."""
    import torch
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    with torch.no_grad():
        return count(lambda: net(torch.rand(1, 3, 299, 299)))


def _model_and_step(run, x):
    """The model of image ``run`` and a function doing one training step's forward and backward on ``x`` in [0, 1],
    with the precision its trainer uses on a T4 (VAEs: pythae with mixed precision, fp16; flows: fp32)."""
    import torch

    family = getattr(run, "family", "vae")
    torch.manual_seed(0)
    if family == "vae":
        from pythae.data.datasets import DatasetOutput

        from molli_utils.models.vae import make_vae

        model = make_vae(run.model, tuple(x.shape[1:]), run.latent_dim, run.width).train()
        step = lambda: model(DatasetOutput(data=x)).loss.backward()  # noqa: E731
        sample = lambda: model.decoder(torch.randn(len(x), run.latent_dim))  # noqa: E731
        return model, step, sample, "fp16" if run.precision == "auto" else "fp32"
    from molli_utils.models.image_flows import make_image_flow

    model = make_image_flow(run.model, tuple(x.shape[1:]), dataset=run.dataset, width=run.width).train()
    step = lambda: model.forward_kld(2 * x - 1).backward()  # noqa: E731
    sample = lambda: model.forward(2 * x - 1)  # a sample costs one pass through the flow, like a density
    return model, step, sample, "fp32"


def estimate_images(runs: Sequence[Any], *, count_batch: int = 4, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The T4 seconds of the image runs ``runs`` (ImageRun): training, samples and the Inception forwards of FID.

    The FLOPs of a training step are counted at ``count_batch`` and scaled linearly to the run's batch;
    the images through Inception are the reference statistics of the training set, the floor (the
    test split), and per run the final score and the snapshots.
    """
    import torch

    c = runs[0]
    train_size = {"cifar10": 50_000, "celeba": 162_770}.get(c.dataset)
    test_size = {"cifar10": 10_000, "celeba": 19_962}.get(c.dataset)
    if train_size is None:
        raise ValueError(f"these runs train on {c.dataset!r}, not a GPU data set: nothing to estimate")
    x = torch.rand(count_batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    total = {"train": 0.0, "sample": 0.0, "inception": 0.0, "train_fp32": 0.0}
    cache: dict[tuple, tuple] = {}
    for r in runs:
        shape = (r.model, r.width, r.latent_dim, r.batch_size, r.precision)
        if shape not in cache:
            model, step, sample, precision = _model_and_step(r, x)
            flops, ops = count(step)
            model.zero_grad(set_to_none=True)
            model.eval()
            with torch.no_grad():
                s_flops, s_ops = count(sample)
            cache[shape] = (flops * r.batch_size / count_batch, ops, s_flops / count_batch, s_ops, precision)
        flops, ops, s_flops, s_ops, precision = cache[shape]
        steps = r.epochs * math.ceil(train_size / r.batch_size)
        n_samples = r.n_score + r.n_snapshot * len(r.snapshot_epochs)
        train_s = gpu_seconds(flops, ops, precision) * steps  # forward + backward; Adam (foreach) adds ~a dozen kernels
        total["train"] += train_s
        total["train_fp32"] += gpu_seconds(flops, ops, "fp32") * steps
        total["sample"] += gpu_seconds(s_flops * n_samples, s_ops * n_samples / 500, "fp32")  # batches of 500
        log(
            f"  {r.model:9s} {r.mode:9s} {flops / 1e9:7.1f} GFLOP/step ({precision}, batch {r.batch_size}), "
            f"{steps:,} steps: {train_s / 60:5.1f} min"
        )
    inc_flops, inc_ops = inception_flops()
    scored = sum(r.n_score + r.n_snapshot * len(r.snapshot_epochs) for r in runs)
    n_inception = train_size + test_size + scored
    total["inception"] = gpu_seconds(inc_flops * n_inception, inc_ops * n_inception / 200, "fp32")  # batches of 200
    log(
        f"  Inception-v3: {inc_flops / 1e9:.2f} GFLOP per image x {n_inception:,} images (reference {train_size:,}, "
        f"floor {test_size:,}, samples {scored:,}): {total['inception'] / 60:.1f} min"
    )
    seconds = total["train"] + total["sample"] + total["inception"]
    fp32 = total["train_fp32"] + total["sample"] + total["inception"]
    models = ", ".join(dict.fromkeys(r.model for r in runs))
    detail = (
        f"ESTIMATE from FLOP counts at {UTILISATION:.0%} of T4 peak (fp16 {T4_TFLOPS['fp16']:g} TFLOPS for "
        f"mixed-precision training, fp32 {T4_TFLOPS['fp32']:g} otherwise): {len(runs)} runs ({models}) of "
        f"{c.epochs} epochs at width {c.width:g}: training {total['train'] / 60:.0f} min, samples "
        f"{total['sample'] / 60:.1f} min, Inception ({inc_flops / 1e9:.1f} GFLOP x {n_inception:,} images) "
        f"{total['inception'] / 60:.0f} min; {fp32 / 60:.0f} min if the training ran at the fp32 peak; "
        "data loading, downloads and warm-up not included"
    )
    return {
        "seconds": seconds,
        "seconds_fp32": fp32,
        "detail": detail,
        "parts": total,
        "inception_gflop": inc_flops / 1e9,
        "inception_images": n_inception,
    }


def _image_chapter_runs() -> list[Any]:
    """The runs chapter 06 trains in the colab profile: the five VAEs x 3 modes, seed 1 (its settings cell)."""
    sys.path.insert(0, str(ROOT))
    from molli_utils.experiments import images, settings

    return images.grid("colab", models=images.VAES, seeds=settings.SEEDS["images"][:1])


def _image_flow_chapter_runs() -> list[Any]:
    """The runs chapter 06b trains in the colab profile: REAL-NVP and GLOW x 3 modes, seed 1 (its settings cell)."""
    sys.path.insert(0, str(ROOT))
    from molli_utils.experiments import images

    return images.grid("colab", models=images.FLOWS, seeds=(1,))


#: The chapters that train on a GPU on Colab (the others run their small models on the CPU there too), each
#: with the image runs it trains in the colab profile. Update it with the chapter's settings cell.
GPU_CHAPTERS: dict[str, Callable[[], list[Any]]] = {
    "06_images": _image_chapter_runs,
    "06b_image_flows": _image_flow_chapter_runs,
}


def estimate(log: Callable[[str], None] = print) -> list[dict]:
    """Rows of the T4 estimate of the colab profile: the GPU chapters from FLOP counts (see the module docstring)."""
    rows = []
    for name, runs in GPU_CHAPTERS.items():
        log(f"{name}, colab profile on a T4:")
        est = estimate_images(runs(), log=log)
        rows.append(
            {
                "chapter": name,
                "profile": "colab",
                "kind": "estimate, T4",
                "seconds": f"{est['seconds']:.0f}",
                "detail": est["detail"],
            }
        )
        log(f"  total: {est['seconds'] / 60:.0f} min")
    return rows


# --------------------------------------------------------------------------- results file and table


def merge(rows: Sequence[dict], path: Path = RESULTS) -> list[dict]:
    """Write ``rows`` into ``path``, replacing the rows of the same chapter, profile and kind; return all rows."""
    stamp = {"machine": _machine(), **_provenance()}
    new = [{**stamp, **r} for r in rows]
    keys = {(r["chapter"], r["profile"], r["kind"]) for r in new}
    old = list(csv.DictReader(path.open())) if path.exists() else []
    merged = [r for r in old if (r["chapter"], r["profile"], r["kind"]) not in keys] + new
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in merged)
    return merged


def _duration(seconds: str) -> str:
    if not seconds:
        return ""
    s = float(seconds)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def label(stem: str) -> str:
    """A chapter's name in the table: its file name with spaces (so that the column can wrap), an assignment's
    shortened (``assignment 1``), to fit the page."""
    return f"assignment {stem[len('assignment')]}" if stem.startswith("assignment") else stem.replace("_", " ")


def render(rows: Sequence[dict], path: Path = TABLE) -> Path:
    """The book's table: one row per chapter, measured CPU times per profile and the Colab T4 time of the colab profile."""
    cell = {(r["chapter"], r["profile"], r["kind"]): r for r in rows}
    header = ["chapter", *[f"{p} (this CPU)" for p in PROFILES], "colab on a T4", "how the T4 time is known"]
    lines = []
    for nb in chapters():
        name = nb.stem
        measured = []
        for p in PROFILES:
            r = cell.get((name, p, "measured, this CPU"))
            text = "" if r is None else (_duration(r["seconds"]) or "failed")
            if r is not None and r["detail"].startswith("ran the"):
                text += f" (ran {r['detail'].split()[2]})"
            measured.append(text)
        if name in GPU_CHAPTERS:
            r = cell.get((name, "colab", "estimate, T4"))
            colab, how = (_duration(r["seconds"]), r["detail"]) if r else ("", "python -m tools.chapter_times estimate")
        else:
            colab = measured[1]
            how = (
                "its models train on the CPU on Colab too: the measured CPU time of the colab profile"
                if colab
                else "not measured yet: python -m tools.chapter_times measure --profile colab"
            )
        lines.append([label(name), *measured, colab, how])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(lines)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tools.chapter_times", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="execute chapters and record their wall time on this CPU")
    m.add_argument("--profile", required=True, choices=PROFILES)
    m.add_argument("--chapters", nargs="+", help="notebook names without .ipynb (default: every chapter)")
    m.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per cell")
    sub.add_parser("estimate", help="the T4 estimate of the colab profile from FLOP counts")
    sub.add_parser("table", help="re-render the table from the results file")
    for p in sub.choices.values():
        p.add_argument(
            "--results", type=Path, default=RESULTS, help=f"results file (default: {RESULTS.relative_to(ROOT)})"
        )
        p.add_argument(
            "--table", type=Path, default=TABLE, help=f"table the book shows (default: {TABLE.relative_to(ROOT)})"
        )
    args = parser.parse_args(argv)
    rows: list[dict] = []
    if args.command == "measure":
        known = {p.stem: p for p in chapters()}
        names = args.chapters or list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown chapter(s) {unknown}; the chapters are {list(known)}")
        rows = measure(args.profile, [known[n] for n in names], timeout=args.timeout)
    elif args.command == "estimate":
        rows = estimate()
    existing = (
        merge(rows, args.results)
        if rows
        else (list(csv.DictReader(args.results.open())) if args.results.exists() else [])
    )
    print(f"wrote {render(existing, args.table)}")
    return 1 if any(r.get("detail", "").startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
