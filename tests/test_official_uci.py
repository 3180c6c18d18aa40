"""tools/official_uci.py runs the official code as its scripts do and stores what it wrote; and the stored
curves of the official code agree with the book's official variant (the check of issue 17)."""

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from tools import official_uci  # noqa: E402

from molli_utils import report  # noqa: E402
from molli_utils.experiments import results  # noqa: E402

FAKE_MAIN = textwrap.dedent(
    """
    # a stand-in for uci/main.py: records its arguments and writes ll.txt as the official code does
    import json, os, sys
    args = sys.argv[1:]
    out = args[args.index("--out_dir") + 1]
    epochs = int(args[args.index("--epochs") + 1])
    seed = int(args[args.index("--seed") + 1])
    os.makedirs(out, exist_ok=True)
    json.dump({"args": args, "threads": os.environ.get("OMP_NUM_THREADS")}, open(os.path.join(out, "args.json"), "w"))
    with open(os.path.join(out, "ll.txt"), "w") as f:
        for k in range(epochs // 5):
            f.write(f"{-20 + k + seed / 10}\\n")
    """
)


@pytest.fixture
def fake_code(tmp_path):
    (tmp_path / "code" / "uci").mkdir(parents=True)
    (tmp_path / "code" / "uci" / "main.py").write_text(FAKE_MAIN)
    return tmp_path / "code"


def test_runs_the_official_command_and_stores_every_fifth_epoch(fake_code, tmp_path):
    argv = [
        "--code",
        str(fake_code),
        "--code-commit",
        "523d2d3",
        "--flows",
        "maf",
        "--modes",
        "vanilla",
        "mollification",
        "--seeds",
        "1",
        "2",
        "--epochs",
        "20",
        "--work",
        str(tmp_path / "work"),
        "--results",
        str(tmp_path / "res"),
    ]
    assert official_uci.main(argv) == 0
    frame = results.load("uci_official_code.csv", tmp_path / "res")
    assert len(frame) == 2 * 2 * 4 and sorted(frame.epoch.unique()) == [5, 10, 15, 20]
    one = frame[(frame["mode"] == "vanilla") & (frame.seed == 2)].sort_values("epoch")
    np.testing.assert_allclose(one.test_loglik, [-19.8, -18.8, -17.8, -16.8])
    assert set(frame.code_commit.astype(str)) == {"523d2d3"}
    import json

    args = json.load(open(tmp_path / "work" / "redwine" / "maf" / "mollification" / "seed_1" / "args.json"))
    assert args["threads"] == "1"
    a = args["args"]
    assert a[a.index("--dataset") + 1] == "REDWINE" and a[a.index("--lr") + 1] == "1e-4" and "--no-cuda" in a
    assert a[a.index("--mollification_epochs") + 1] == "20", "mollification anneals over the whole run"
    vanilla = json.load(open(tmp_path / "work" / "redwine" / "maf" / "vanilla" / "seed_1" / "args.json"))["args"]
    assert "--mollification_epochs" not in vanilla
    # a second call finds every run recorded and adds nothing
    official_uci.main(argv)
    assert len(results.load("uci_official_code.csv", tmp_path / "res")) == len(frame)


def test_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "ll.txt").write_text("-20\n-19\n")
    with pytest.raises(ValueError, match="holds 2 test log-likelihoods, expected 30"):
        official_uci.read_curve(tmp_path / "ll.txt", 150)


def test_a_folder_without_the_official_code_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        official_uci.main(["--code", str(tmp_path), "--code-commit", "x", "--results", str(tmp_path / "r")])


def _two_runs(values_by_seed, **fixed):
    return pd.DataFrame(
        [
            {**fixed, "seed": seed, "epoch": e, "test_loglik": v}
            for seed, curve in values_by_seed.items()
            for e, v in curve.items()
        ]
    )


def test_the_code_check_sees_a_curve_that_departs_and_accepts_one_within_noise():
    code = _two_runs(
        {1: {10: -12.0, 150: -15.0}, 2: {10: -12.2, 150: -15.4}}, dataset="redwine", flow="maf", mode="vanilla"
    )
    close = _two_runs(
        {1: {10: -12.1, 150: -15.3}, 2: {10: -12.0, 150: -15.1}},
        dataset="redwine",
        flow="maf",
        mode="vanilla",
        variant="official",
    )
    table = report.uci_code_check(code, close, epochs=(10, 150))
    assert table.agrees.all() and list(table.epoch) == [10, 150]
    np.testing.assert_allclose(table["diff"], [0.05, 0.0], atol=1e-12)
    # the paper-text variant's vanilla MAF ends 4.5 nats above the official code: seen
    far = close.assign(test_loglik=close.test_loglik + (close.epoch == 150) * 4.5)
    table = report.uci_code_check(code, far, epochs=(10, 150))
    assert list(table.agrees) == [True, False]
    # rows of another variant are not the official variant's
    assert report.uci_code_check(code, far.assign(variant="paper-text")).empty


def test_the_stored_official_variant_follows_the_official_code_within_seed_noise():
    """Red wine, vanilla, all stored seeds of each: at epochs 10/40/100/150 the means differ by less than
    0.3 nats or not significantly (Welch's t-test, 5% with Bonferroni over the 12 comparisons)."""
    table = report.uci_code_check(results.load("uci_official_code.csv"), results.load("uci_curves.csv.gz"))
    assert len(table) == 3 * len(report.CODE_CHECK_EPOCHS), table
    assert (table.n_code >= 2).all() and (table.n_ours >= 2).all(), table
    assert table.agrees.all(), f"the official variant departs from the official code:\n{table[~table.agrees]}"
