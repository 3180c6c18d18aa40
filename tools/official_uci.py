"""Run the paper's official UCI code on the CPU and store its test log-likelihood curves.

The official code (``tranbahien/data-mollification``, ``uci/main.py``) is what produced the
paper's Table 4; chapter 4 checks the book's *official* flow variant against it. This
command runs it as its own scripts do (``uci/scripts/redwine_vanilla.sh``)::

    python main.py --seed S --flow F --dataset REDWINE --epochs 150 --lr 1e-4 --mode vanilla --no-cuda

reads the ``ll.txt`` each run writes (the test log-likelihood after every 5th epoch) and
appends one row per point to ``uci_official_code.csv``::

    pip install tensorboardX            # the official code imports it
    python -m tools.official_uci --code PATH/TO/data-mollification --code-commit 523d2d3 \\
        --results molli_utils/results   # red wine, MAF/REAL-NVP/GLOW, vanilla, seeds 1 2

``PATH`` is a copy of the official repository (its ``uci/`` folder with ``main.py`` and
``data/``); ``--code-commit`` names the commit it is a copy of (read from git when ``PATH``
is a checkout). Runs whose ``ll.txt`` already exists under ``--work`` are not repeated, so
an interrupted batch resumes. One thread per run (``OMP_NUM_THREADS=1``), as the book's own
UCI runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from molli_utils.experiments import results

DATASETS = {"redwine": "REDWINE", "whitewine": "WHITEWINE", "parkinsons": "PARKINSONS"}
#: The official code evaluates the test set after epochs 5, 10, ..., 150 (``(epoch + 1) % 5 == 0``).
EVERY = 5


def code_commit(code: Path, given: str | None) -> str:
    """The commit of the official code: ``given``, else ``git rev-parse`` of the checkout."""
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{code} is not a git checkout: say which commit it is a copy of with --code-commit") from None
    return out.stdout.strip()


def read_curve(ll_txt: Path, epochs: int) -> list[tuple[int, float]]:
    """``(epoch, test_loglik)`` pairs of one ``ll.txt``; refuses a file of the wrong length."""
    values = np.atleast_1d(np.loadtxt(ll_txt))
    if len(values) != epochs // EVERY:
        raise ValueError(
            f"{ll_txt} holds {len(values)} test log-likelihoods, expected {epochs // EVERY} "
            f"(one per {EVERY} epochs of {epochs}): the run did not finish; delete its folder and re-run"
        )
    return [(EVERY * (i + 1), float(v)) for i, v in enumerate(values)]


def run_one(uci_dir: Path, out: Path, *, dataset: str, flow: str, mode: str, seed: int, epochs: int) -> float:
    """Run ``main.py`` once (unless ``out/ll.txt`` exists); return its wall-clock seconds (nan when reused)."""
    if (out / "ll.txt").exists():
        seconds = out / "seconds.txt"
        return float(seconds.read_text()) if seconds.exists() else float("nan")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "main.py",
        "--seed",
        str(seed),
        "--flow",
        flow,
        "--dataset",
        DATASETS[dataset],
        "--out_dir",
        str(out),
        "--epochs",
        str(epochs),
        "--lr",
        "1e-4",
        "--mode",
        mode,
        "--no-cuda",
    ]
    if mode == "mollification":
        cmd += ["--mollification_epochs", str(epochs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        done = subprocess.run(cmd, cwd=uci_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the official code failed ({' '.join(cmd)}); its output is in {out / 'log.txt'}")
    (out / "seconds.txt").write_text(f"{seconds:.1f}\n")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.official_uci", description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, required=True, help="a copy of tranbahien/data-mollification")
    parser.add_argument("--code-commit", help="its commit (default: git rev-parse of --code)")
    parser.add_argument("--datasets", nargs="+", default=["redwine"], choices=list(DATASETS))
    parser.add_argument("--flows", nargs="+", default=["maf", "realnvp", "glow"], choices=["maf", "realnvp", "glow"])
    parser.add_argument("--modes", nargs="+", default=["vanilla"], choices=["vanilla", "mollification"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--work", type=Path, default=Path("official_uci_runs"), help="where each run writes ll.txt")
    parser.add_argument("--results", default=None, help="results folder (default: $MOLLI_RESULTS, else ./results)")
    args = parser.parse_args(argv)
    uci_dir = args.code / "uci"
    if not (uci_dir / "main.py").exists():
        parser.error(f"{uci_dir / 'main.py'} not found: --code must be a copy of tranbahien/data-mollification")
    commit = code_commit(args.code, args.code_commit)
    stamp = results.provenance()
    path = results.results_dir(args.results) / "uci_official_code.csv"
    done = results.recorded(path, "uci_official_code.csv")
    for dataset in args.datasets:
        for flow in args.flows:
            for mode in args.modes:
                for seed in args.seeds:
                    key = {"dataset": dataset, "flow": flow, "mode": mode, "seed": seed, "epoch": args.epochs}
                    if results.record_key(key, results.FILES["uci_official_code.csv"].key) in done:
                        continue
                    out = args.work / dataset / flow / mode / f"seed_{seed}"
                    seconds = run_one(
                        uci_dir, out, dataset=dataset, flow=flow, mode=mode, seed=seed, epochs=args.epochs
                    )
                    rows = [
                        {
                            **key,
                            "epoch": e,
                            "test_loglik": ll,
                            "run_seconds": round(seconds, 1),
                            "code_commit": commit,
                            **stamp,
                        }
                        for e, ll in read_curve(out / "ll.txt", args.epochs)
                    ]
                    results.append(path, rows, "uci_official_code.csv")
                    print(
                        f"{dataset}/{flow}/{mode}/seed {seed}: test LL at epoch {args.epochs} {rows[-1]['test_loglik']:.3f}"
                        f" ({seconds:.0f} s) -> {path}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
