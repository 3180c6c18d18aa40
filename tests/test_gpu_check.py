"""tools.gpu_check, the prepared GPU check: on a CPU it refuses at once, and its smoke mode runs every path tiny
(gloo for the DDP paths, fp16 skipped with its reason); a failing path is reported with the others still run,
the budget cuts paths off and the watchdog ends a stuck one."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tools import gpu_check as G

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--device", "cpu", "--smoke"]


def _command(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m tools.gpu_check ARGS`` from the checkout, with no GPU visible."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tools.gpu_check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_refuses_at_once_without_cuda():
    out = _command()
    assert out.returncode == G.EXIT_REFUSED and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "--device cpu --smoke" in lines[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "no CUDA device"),
        (["--device", "cpu"], "only with --smoke"),
        (["--device", "cpu", "--smoke", "--steps", "0"], "--steps must be"),
        (["--device", "cuda:7"], "no CUDA device"),
    ],
)
def test_refusals_in_process(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine with a GPU
    assert G.main(argv) == G.EXIT_REFUSED
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_smoke_runs_every_path_on_the_cpu(tmp_path, capsys):
    report = tmp_path / "gpu_check.json"
    assert G.main([*SMOKE, "--json", str(report)]) == G.EXIT_OK
    text = capsys.readouterr().out
    assert "ms/step" in text and "peak MiB" in text and "gpu_check: OK: 6 of 7 paths ran" in text
    saved = json.loads(report.read_text())
    rows = {r["path"]: r for r in saved["rows"]}
    assert list(rows) == list(G.PATHS) and saved["exit"] == G.EXIT_OK and saved["smoke"]
    fp16 = rows.pop("vae-fp16")
    assert fp16["status"] == "skipped" and "fp16" in fp16["note"] and "CPU" in fp16["note"]
    for path, row in rows.items():
        assert row["status"] == "ok", (path, row["error"])
        assert row["steps"] > 0 and math.isfinite(row["ms_per_step"]) and row["ms_per_step"] > 0, row
        assert row["device"].startswith("CPU") and row["peak_mib"] > 0
    assert rows["vae-bf16"]["dtype"] == "bf16" and "MollifiedTrainer" in rows["vae-bf16"]["what"]
    assert "glow" in rows["flow-fp32"]["what"] and "bits/dim" in rows["flow-fp32"]["note"]
    assert "InceptionV3" in rows["inception-fp32"]["what"] and "images/s" in rows["inception-fp32"]["note"]
    for path in ("ddp-flow", "ddp-vae"):  # the distributed code ran: DDP forwards on a gloo group of one rank
        assert "ws=1 gloo" in rows[path]["what"] and "DDP forward passes" in rows[path]["note"]
    assert not torch.distributed.is_initialized()  # the check ends its process group


def test_failing_paths_are_reported_together_after_the_others_ran(capsys):
    argv = [*SMOKE, "--only", "vae-fp32", "flow-fp32", "ddp-flow", "--fail", "vae-fp32", "ddp-flow"]
    assert G.main(argv) == G.EXIT_FAILED
    text = capsys.readouterr().out
    assert "flow-fp32: ok" in text  # ran after the first failure
    summary = text[text.index("gpu_check: FAILED: 2 of 3 paths") :]
    assert "vae-fp32: RuntimeError: injected failure (--fail vae-fp32)" in summary
    assert "ddp-flow: RuntimeError: injected failure (--fail ddp-flow)" in summary
    assert "Traceback" in text  # each failure's traceback is printed where it happened


def test_budget_cuts_paths_off(capsys):
    assert G.main([*SMOKE, "--budget-s", "0", "--only", "vae-fp32", "ddp-vae"]) == G.EXIT_INCOMPLETE
    text = capsys.readouterr().out
    assert text.count("not started: budget") == 2 and "INCOMPLETE" in text and "cut off vae-fp32, ddp-vae" in text


def test_watchdog_ends_a_stuck_path_with_the_table():
    out = _command(
        *SMOKE, "--only", "flow-fp32", "inception-fp32", "--hang", "flow-fp32", "--budget-s", "1", "--grace-s", "0.5"
    )
    assert out.returncode == G.EXIT_FAILED, out.stdout + out.stderr
    assert "flow-fp32: still running at the hard limit (1.5 s)" in out.stdout
    assert "ms/step" in out.stdout and "not started: watchdog" in out.stdout  # the table, with the path never started
