"""Issue #32, "lose nothing": a toy ensemble interrupted mid-run resumes to bitwise the rows of an uninterrupted
run (API and command); SIGTERM to a command with a worker pool terminates the workers, keeps the finished rows
and leaves the results folder intact; an incomplete checkpoint is refused with a clear error."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from molli_utils import checkpoints
from molli_utils.experiments import main, results, toy2d
from molli_utils.training import CHECKPOINT_NAME, TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
TINY = dict(steps=24, n_train=300, n_test=100, n_val=100, n_samples=100, n_evals=4)


class Stop(KeyboardInterrupt):
    pass


def _stop_at(step):
    def callback(done, model):
        if done == step:
            raise Stop

    return callback


def _stable(rows):
    return [{k: v for k, v in row.items() if k not in results.VOLATILE} for row in rows]


def _same(a, b):
    """Rows equal, nan equal to nan."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), (k, x[k], y[k])


def test_an_interrupted_toy_ensemble_resumes_bitwise(tmp_path):
    runs = toy2d.grid("quick", datasets=["von_mises"], modes=["vanilla", "mollification"], seeds=[0], **TINY)
    straight = toy2d.run(runs, dead_units_every=6)
    with pytest.raises(Stop):  # step 15: after the checkpoint of step 12, mid-way to the next
        toy2d.run(runs, dead_units_every=6, checkpoint_dir=tmp_path, callback=_stop_at(15))
    saved = checkpoints.load(tmp_path / CHECKPOINT_NAME)
    assert saved["loop"]["step"] == 12 and set(saved["extra"]) == {"validation", "dead_units"}
    resumed = toy2d.run(runs, dead_units_every=6, checkpoint_dir=tmp_path)
    assert resumed.train.resumed_from == 12
    _same(_stable(resumed.rows), _stable(straight.rows))
    assert resumed.dead == straight.dead and resumed.curve() == straight.curve()
    assert resumed.validation.steps == straight.validation.steps and resumed.validation.nll == straight.validation.nll
    with pytest.raises(checkpoints.CheckpointError, match="different configuration"):  # other tracker settings
        toy2d.run(runs, dead_units_every=3, checkpoint_dir=tmp_path)


def test_the_toy_command_resumes_after_ctrl_c(tmp_path, monkeypatch, capsys):
    argv = [
        "toy2d",
        "--profile",
        "quick",
        "--steps",
        "24",
        "--n-evals",
        "4",
        "--seeds",
        "0",
        "--datasets",
        "mixture_of_gaussians",
        "--modes",
        "vanilla",
        "mollification",
        "--n-train",
        "300",
        "--n-test",
        "100",
        "--n-val",
        "100",
        "--n-samples",
        "100",
        "--no-progress",
        "--workers",
        "1",
    ]
    main([*argv, "--results", str(tmp_path / "straight"), "--checkpoints", "none"])
    real = toy2d.run

    def interrupted(runs, **kw):
        return real(runs, **kw, callback=_stop_at(15))

    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(toy2d, "run", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--results", str(tmp_path / "resumed"), "--checkpoints", str(ckpt)])
    assert exit_.value.code == 130 and "run the same command again to resume" in capsys.readouterr().err
    assert not (tmp_path / "resumed" / "toy2d.csv").exists() and len(list(ckpt.iterdir())) == 1
    monkeypatch.setattr(toy2d, "run", real)
    main([*argv, "--results", str(tmp_path / "resumed"), "--checkpoints", str(ckpt)])
    assert "1 resumed from" in capsys.readouterr().out
    assert list(ckpt.iterdir()) == []  # removed once the rows are stored
    for name in (toy2d.RESULTS, toy2d.CURVES, toy2d.DEAD_UNITS):
        a, b = (results.load(name, tmp_path / k) for k in ("straight", "resumed"))
        keep = [c for c in a.columns if c not in results.VOLATILE]
        assert a[keep].equals(b[keep]), name


def test_a_checkpoint_without_its_rng_is_refused_clearly(tmp_path):
    data = torch.randn(64, 2)

    class Gauss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(2))

        def forward_kld(self, x):
            return ((x - self.mu) ** 2).sum(1).mean()

    config = TrainConfig(batch_size=16, lr=1e-2, steps=4, checkpoint_dir=tmp_path, progress=False)
    train(Gauss(), data, config)
    state = checkpoints.load(tmp_path / CHECKPOINT_NAME)
    del state["rng"]
    checkpoints.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(checkpoints.CheckpointError, match=r"incomplete: lacks \['rng'\].*delete it"):
        train(Gauss(), data, config)
    state["rng"] = {"torch": torch.get_rng_state()}
    checkpoints.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(checkpoints.CheckpointError, match=r"its 'rng' part lacks \['data', 'mollifier', 'cuda'\]"):
        train(Gauss(), data, config)


_POOL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from molli_utils.experiments import cli, results
    import tests.pool_tasks as tasks

    if __name__ == "__main__":  # spawned workers import this file too
        out = Path(sys.argv[1])
        with cli.stop_on_signals(), cli.process_pool(3) as pool:
            futures = [pool.submit(tasks.task, name, str(out.parent)) for name in ("fast", "slow1", "slow2")]
            for fut in __import__("concurrent.futures").futures.as_completed(futures):
                row = fut.result()
                with cli.deferred_signals():
                    results.append(out, [row])
                print("stored", row["chapter"], flush=True)
""")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_the_pool_keeps_finished_rows_and_leaves_no_orphans(tmp_path):
    out = tmp_path / "chapter_times.csv"
    script = tmp_path / "pool.py"
    script.write_text(_POOL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    line = ""
    while time.time() < deadline and "stored fast" not in line:
        line = proc.stdout.readline()
    pids = {int(p.read_text()) for p in tmp_path.glob("*.pid")}
    while time.time() < deadline and len(pids) < 2:
        time.sleep(0.1)
        pids = {int(p.read_text()) for p in tmp_path.glob("*.pid")}
    assert "stored fast" in line and len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Interrupted: stopped by SIGTERM" in err
    time.sleep(0.5)
    alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, f"orphaned workers {alive}"
    results.check_intact(out)
    assert list(results.load("chapter_times.csv", tmp_path)["chapter"]) == ["fast"]


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"
