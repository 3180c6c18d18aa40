"""Record the arithmetic of stored rows that a re-run reproduces bit for bit.

Rows made before the results files recorded their arithmetic have an empty ``arith`` column, so a
re-run can only be judged against them within tolerances. Re-run some of them with the experiment's
own command into a folder (from a clean checkout), then::

    python -m tools.record_arith uci.csv RERUN_DIR            # or toy2d.csv, indm_toy2d.csv, ...

replaces every stored row whose re-run is equal in every column but the machine's and the moment's
(``train_seconds``, ``eval_seconds``, ``wall_seconds_all_runs``, ``members``, ``arith``, ``commit``,
``dirty``, ``date``), compared as the text the command wrote, i.e. bit for bit, and for ``uci.csv``
also at every epoch of its learning curve, by the re-run row: the same numbers with the re-run's
commit, date, times and arithmetic. A re-run that differs leaves its stored row alone and is named;
the command then exits 1. ``--into`` is the stored results folder (default ``molli_utils/results``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from pathlib import Path

from molli_utils.experiments import results

VOLATILE = results.VOLATILE
CURVES = {"uci.csv": "uci_curves.csv.gz"}


def _read(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="") as f:
        return list(csv.DictReader(f))


def _key(row: dict[str, str], key) -> tuple:
    return results.record_key(row, key)


def record(name: str, rerun: Path, into: Path) -> tuple[int, list[str]]:
    """Replace the rows of ``into/name`` that ``rerun/name`` reproduces bitwise; return (replaced, refusals)."""
    spec = results.FILES[name]
    stored, new = _read(into / name), _read(rerun / name)
    curve_name = CURVES.get(name)
    if curve_name:
        curve_key = results.FILES[curve_name].key
        run_key = [k for k in curve_key if k != "epoch"]

        def curves(rows):
            out: dict[tuple, list[tuple]] = {}
            for r in rows:
                out.setdefault(_key(r, run_key), []).append(tuple(r[c] for c in results.FILES[curve_name].columns))
            return {k: sorted(v) for k, v in out.items()}

        stored_curves, new_curves = curves(_read(into / curve_name)), curves(_read(rerun / curve_name))
    index = {_key(r, spec.key): i for i, r in enumerate(stored)}
    replaced, refusals = 0, []
    for row in new:
        k = _key(row, spec.key)
        if k not in index:
            refusals.append(f"{dict(zip(spec.key, k))}: no stored row with this key")
            continue
        old = stored[index[k]]
        diffs = [c for c in spec.columns if c not in VOLATILE and old.get(c) != row.get(c)]
        if curve_name:
            ck = _key(row, run_key)
            if stored_curves.get(ck) != new_curves.get(ck):
                diffs.append("the learning curve")
        if diffs:
            refusals.append(f"{dict(zip(spec.key, k))}: the re-run differs in {diffs}")
            continue
        stored[index[k]] = {c: row.get(c, "") for c in spec.columns}
        replaced += 1
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(spec.columns))
    writer.writeheader()
    writer.writerows(stored)
    (into / name).write_text(text.getvalue(), newline="")
    return replaced, refusals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(results.FILES), help="the results file")
    parser.add_argument("rerun", type=Path, help="the folder the re-run's command wrote")
    parser.add_argument("--into", type=Path, default=Path("molli_utils/results"), help="the stored results folder")
    args = parser.parse_args(argv)
    replaced, refusals = record(args.name, args.rerun, args.into)
    print(f"{args.into / args.name}: {replaced} row(s) now carry the re-run's arithmetic and provenance")
    for line in refusals:
        print(f"left alone: {line}", file=sys.stderr)
    return 1 if refusals else 0


if __name__ == "__main__":
    sys.exit(main())
