"""tools/record_arith.py: only a bitwise re-run (row and curve) may give a stored row its arithmetic."""

import csv
import gzip
import shutil

from molli_utils.experiments import results
from tools import record_arith


def _rows(path):
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write(path, rows, name):
    path.parent.mkdir(parents=True, exist_ok=True)
    results.append(path, rows, name=name)


def test_a_bitwise_rerun_is_recorded_and_a_different_one_refused(tmp_path):
    stored, rerun = tmp_path / "stored", tmp_path / "rerun"
    table = _rows(results.stored_path("uci.csv"))
    curves = _rows(results.stored_path("uci_curves.csv.gz"))
    pick = [
        r
        for r in table
        if (r["dataset"], r["flow"], r["variant"], r["seed"]) == ("redwine", "maf", "official", "2")
        and r["mode"] in ("vanilla", "mollification")
    ]
    assert len(pick) == 2 and all(r["arith"] == "" for r in pick)

    def curve_of(r):
        return [
            c for c in curves if all(c[k] == r[k] for k in ("dataset", "flow", "variant", "mode", "seed", "optimizer"))
        ]

    _write(stored / "uci.csv", pick, "uci.csv")
    _write(stored / "uci_curves.csv.gz", curve_of(pick[0]) + curve_of(pick[1]), "uci_curves.csv.gz")
    same = {**pick[0], "arith": "torch2.14.1/cpu:AVX512/1t/0123456789", "commit": "abc1234", "train_seconds": "1.0"}
    other = {**pick[1], "arith": "torch2.14.1/cpu:AVX512/1t/0123456789", "commit": "abc1234"}
    _write(rerun / "uci.csv", [same, other], "uci.csv")
    bent = [dict(c) for c in curve_of(pick[1])]
    bent[-1]["val_loglik"] = bent[-1]["val_loglik"][:-1] + ("1" if bent[-1]["val_loglik"][-1] != "1" else "2")
    _write(rerun / "uci_curves.csv.gz", curve_of(pick[0]) + bent, "uci_curves.csv.gz")
    before = (stored / "uci.csv").read_bytes()

    assert record_arith.main(["uci.csv", str(rerun), "--into", str(stored)]) == 1  # one refusal
    after = _rows(stored / "uci.csv")
    assert after[0]["arith"] == same["arith"] and after[0]["commit"] == "abc1234" and after[0]["train_seconds"] == "1.0"
    assert after[1] == pick[1]  # the curve differed in one digit: left alone
    assert {k: v for k, v in after[0].items() if k not in record_arith.VOLATILE} == {
        k: v for k, v in pick[0].items() if k not in record_arith.VOLATILE
    }
    assert (stored / "uci.csv").read_bytes() != before and b"\r\n" in (stored / "uci.csv").read_bytes()

    shutil.copy(stored / "uci.csv", tmp_path / "again.csv")
    changed = {**pick[0], "test_loglik": "-1.0", "arith": "x/y/z/w"}
    _write(tmp_path / "rerun2" / "uci.csv", [changed], "uci.csv")
    shutil.copy(rerun / "uci_curves.csv.gz", tmp_path / "rerun2" / "uci_curves.csv.gz")
    replaced, refusals = record_arith.record("uci.csv", tmp_path / "rerun2", stored)
    assert replaced == 0 and "test_loglik" in refusals[0]
    assert (stored / "uci.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()
