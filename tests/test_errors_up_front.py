"""Issue #32, "errors up front" and "lose nothing": every bad command-line value and every unusable results folder
is refused with a one-line error (exit code 2) before any work; one failed run never throws away the others."""

import gzip
import math

import pytest

from molli_utils.experiments import cli, main, results, toy2d

SMALL = [
    "--profile",
    "quick",
    "--steps",
    "4",
    "--n-evals",
    "2",
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

BAD = [  # (argv, what the one-line error says)
    (["toy2d", "--seeds", "-1"], "--seeds: must be an integer >= 0"),
    (["toy2d", "--steps", "0"], "--steps: must be a positive integer"),
    (["toy2d", "--steps", "-5"], "--steps: must be a positive integer"),
    (["toy2d", "--steps", "ten"], "expected an integer"),
    (["toy2d", "--n-evals", "0"], "--n-evals: must be a positive integer"),
    (["toy2d", "--n-train", "0"], "--n-train: must be a positive integer"),
    (["toy2d", "--n-train", "10"], "smaller than the batch size"),
    (["toy2d", "--threads", "0"], "--threads: must be a positive integer"),
    (["toy2d", "--workers", "0"], "--workers: must be a positive integer"),
    (["toy2d", "--noise-floor", "0"], "--noise-floor: must be a positive integer"),
    (["toy2d", "--noise-floor", "3", "--n-samples", "1"], "--n-samples must be at least 2"),
    (["toy2d", "--modes", "sideways"], "invalid choice"),
    (["toy2d", "--activation", "tanh"], "unknown activation"),
    (["indm", "--draws", "0"], "--draws: must be a positive integer"),
    (["indm", "--sample-steps", "0"], "--sample-steps: must be a positive integer"),
    (["indm", "--seeds", "-3"], "--seeds: must be an integer >= 0"),
    (["indm", "--threads", "-1"], "--threads: must be a positive integer"),
    (["uci"], "give --all"),
    (["uci", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["uci", "--seeds", "-1"], "--seeds/--seed: must be an integer >= 0"),
    (["uci", "--all", "--workers", "0"], "--workers: must be a positive integer"),
    (["uci", "--datasets", "iris"], "invalid choice"),
    (["images", "--n-score", "0"], "--n-score/--samples: must be a positive integer"),
    (["images", "--seeds", "-2"], "--seeds: must be an integer >= 0"),
    (["images", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["images", "--width", "0"], "--width: must be a finite number > 0"),
    (["images", "--taus", "nan"], "--taus: must be a finite number > 0"),
    (["images", "--decoder-variance", "-1"], "--decoder-variance: must be a finite number > 0"),
    (["images", "--grad-clip", "inf"], "--grad-clip: must be a finite number > 0"),
    (["images", "--workers", "0"], "--workers: must be a positive integer"),
    (["images", "--threads", "0"], "--threads: must be a positive integer"),
]


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    return exit_.value.code, err


@pytest.mark.parametrize("argv, says", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_value_is_one_line_and_exit_code_2(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written anywhere: checked below
    code, err = _refused([*argv, "--results", str(tmp_path / "out")], capsys)
    assert code == 2 and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "toy2d.csv").exists() and not (tmp_path / "checkpoints").exists()


def _unwritable_or_wrong(tmp_path):
    """(results folder, what the error says) for every way a results folder can be unusable."""
    afile = tmp_path / "a_file"
    afile.write_text("x")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "toy2d.csv").write_text(",".join(results.FILES["toy2d.csv"].columns) + "\nmixture_of_gaussians,vani")
    other = tmp_path / "other"
    other.mkdir()
    (other / "toy2d.csv").write_text("a,b,c\n1,2,3\n")
    gz = tmp_path / "gz"
    gz.mkdir()
    blob = gzip.compress((",".join(results.FILES["toy2d_curves.csv"].columns) + "\n").encode() * 50)
    (gz / "toy2d_curves.csv").write_text(",".join(results.FILES["toy2d_curves.csv"].columns) + "\n")
    (gz / "uci_curves.csv.gz").write_bytes(blob[: len(blob) // 2])
    folder_as_file = tmp_path / "dir"
    (folder_as_file / "toy2d.csv").mkdir(parents=True)
    cases = [
        (afile, "is a file, not a folder"),
        (afile / "below", "cannot write to the results folder"),
        (cut, "is cut"),
        (other, "has the columns ['a', 'b', 'c']"),
        (folder_as_file, "is not a file"),
    ]
    return cases, gz


def test_an_unusable_results_folder_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    trained = []
    monkeypatch.setattr(toy2d, "run", lambda *a, **k: trained.append(1))
    cases, gz = _unwritable_or_wrong(tmp_path)
    for folder, says in cases:
        code, err = _refused(["toy2d", *SMALL, "--results", str(folder), "--checkpoints", "none"], capsys)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (folder, err)
    code, err = _refused(["uci", "--datasets", "redwine", "--results", str(gz)], capsys)
    assert code == 2 and "uci_curves.csv.gz is damaged" in err
    assert not trained


def test_a_missing_uci_data_set_is_refused_before_any_run(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, err = _refused(
        [
            "uci",
            "--datasets",
            "miniboone",
            "redwine",
            "--root",
            str(tmp_path / "none"),
            "--results",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 2 and "'miniboone' is not available offline" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "uci.csv").exists() and not (tmp_path / "none").exists()


def test_the_results_folder_is_created_and_probed(tmp_path):
    folder = cli.check_results_folder(tmp_path / "new" / "deeper", ["toy2d.csv"])
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "f").write_text("x")
    for argv in (["--debug", "toy2d"], ["toy2d", "--debug"]):
        with pytest.raises(cli.UsageError, match="is a file"):
            main([*argv, *SMALL, "--results", str(tmp_path / "f"), "--checkpoints", "none"])


def test_repeated_seeds_are_trained_once(tmp_path, capsys, monkeypatch):
    seen = []
    real = toy2d.run

    def spy(runs, **kw):
        seen.extend(runs)
        return real(runs, **kw)

    monkeypatch.setattr(toy2d, "run", spy)
    main(
        [
            "toy2d",
            *SMALL,
            "--seeds",
            "0",
            "0",
            "--modes",
            "vanilla",
            "vanilla",
            "mollification",
            "--results",
            str(tmp_path),
            "--checkpoints",
            "none",
        ]
    )
    assert len(seen) == 2 and len(set(seen)) == 2
    assert "repeat(s) a value" in capsys.readouterr().err
    assert len(results.load("toy2d.csv", tmp_path)) == 2


def test_one_failed_ensemble_keeps_the_others_rows(tmp_path, capsys, monkeypatch):
    from molli_utils.experiments import commands

    real = commands.train_ensemble

    def flaky(runs, *a, **k):
        if runs[0].activation == "leaky_relu":
            raise RuntimeError("simulated failure")
        return real(runs, *a, **k)

    monkeypatch.setattr(commands, "train_ensemble", flaky)
    with pytest.raises(SystemExit) as exit_:
        main(
            ["toy2d", *SMALL, "--activation", "leaky_relu", "relu", "--results", str(tmp_path), "--checkpoints", "none"]
        )
    captured = capsys.readouterr()
    assert exit_.value.code == 1
    assert "2 run(s) failed (2 finished run(s) are stored" in captured.err and "simulated failure" in captured.err
    assert "activation=leaky_relu" in captured.err and "Traceback" not in captured.err
    frame = results.load("toy2d.csv", tmp_path)
    assert list(frame["activation"]) == ["relu", "relu"]
    monkeypatch.setattr(commands, "train_ensemble", real)
    main(["toy2d", *SMALL, "--activation", "leaky_relu", "relu", "--results", str(tmp_path), "--checkpoints", "none"])
    assert "2 of 4 toy runs already" in capsys.readouterr().out
    assert sorted(results.load("toy2d.csv", tmp_path)["activation"]) == ["leaky_relu"] * 2 + ["relu"] * 2


@pytest.mark.slow
def test_one_failed_uci_run_keeps_the_others(tmp_path, capsys):
    """A run whose data set cannot be loaded (a damaged data.npy) fails; the other, finished, is stored."""
    import pathlib
    import shutil

    from molli_utils.experiments import uci

    shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
    if not (shared / "redwine" / "data.npy").exists():
        pytest.skip("../shared/data/uci is absent")
    root = tmp_path / "data"
    (root / "redwine").mkdir(parents=True)
    shutil.copy(shared / "redwine" / "data.npy", root / "redwine" / "data.npy")
    (root / "whitewine").mkdir()
    (root / "whitewine" / "data.npy").write_bytes(b"not an array")
    runs = [uci.UCIRun(d, "maf", "vanilla", 1, epochs=1, hidden=8, layers=1) for d in ("whitewine", "redwine")]
    lines = []
    with pytest.raises(cli.RunsFailed) as failed:
        uci.run_many(runs, tmp_path / "out", workers=1, root=root, log=lines.append)
    assert failed.value.stored == 1 and failed.value.failures[0][0]["dataset"] == "whitewine"
    assert "dataset=whitewine" in str(failed.value) and any("FAILED" in line for line in lines)
    frame = results.load("uci.csv", tmp_path / "out")
    assert list(frame["dataset"]) == ["redwine"] and math.isfinite(frame["test_loglik"][0])
