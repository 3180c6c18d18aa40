"""molli_utils.experiments.results: the stored results ship with the package; files are appended to,
checked and skipped by key; loading fails loudly; every row carries its provenance."""

import csv
import gzip

import pandas as pd
import pytest

from molli_utils.experiments import results, toy2d, uci


def test_every_stored_file_loads_from_the_package_with_what_the_book_needs():
    stored = {p.name for p in results.stored_path("uci.csv").parent.iterdir()}
    assert {"toy2d.csv", "indm_toy2d.csv", "uci.csv", "uci_curves.csv.gz", "overhead.csv"} <= stored
    for name in stored:
        frame = results.load(name)  # required columns are checked
        assert len(frame) > 0 and list(frame.columns) == list(results.FILES[name].columns)


def test_missing_column_fails_loudly_with_the_command_that_rebuilds_it(tmp_path):
    cols = [c for c in results.FILES["uci.csv"].required if c != "test_loglik_best_val"]
    pd.DataFrame([{c: 1 for c in cols}]).to_csv(tmp_path / "uci.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['test_loglik_best_val'\].*experiments uci --all"):
        results.load("uci.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="experiments toy2d"):
        results.load("toy2d.csv", tmp_path)
    with pytest.raises(ValueError, match="unknown results file 'toys.csv'"):
        results.load("toys.csv")


def test_a_commit_that_looks_like_a_number_reads_back_as_its_hash(tmp_path):
    # 50e9218 and 1234567 are short hashes that pandas would read as inf and as an integer
    cols = results.FILES["toy2d.csv"].columns
    rows = [{c: 0 for c in cols} | {"commit": h} for h in ("50e9218", "1234567", "ea7c13d")]
    pd.DataFrame(rows).to_csv(tmp_path / "toy2d.csv", index=False)
    assert list(results.load("toy2d.csv", tmp_path)["commit"]) == ["50e9218", "1234567", "ea7c13d"]


def test_results_dir_is_never_inside_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("MOLLI_RESULTS", raising=False)
    assert str(results.results_dir()) == "results"  # relative: under the current directory
    monkeypatch.setenv("MOLLI_RESULTS", str(tmp_path))
    assert results.results_dir() == tmp_path
    assert results.results_dir("elsewhere") == results.results_dir("elsewhere")


def test_append_writes_the_header_once_and_refuses_a_file_of_other_columns(tmp_path):
    row = {c: i for i, c in enumerate(results.FILES["uci.csv"].columns)}
    path = tmp_path / "uci.csv"
    results.append(path, [row])
    results.append(path, [{**row, "seed": 99, "extra": "ignored"}])
    rows = list(csv.DictReader(open(path)))
    assert [r["seed"] for r in rows] == [str(row["seed"]), "99"] and "extra" not in rows[0]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "uci.csv").write_text("dataset,flow\nredwine,maf\n")
    with pytest.raises(ValueError, match="has the columns"):
        results.append(tmp_path / "old" / "uci.csv", [row])


def test_gzip_file_appends_members_that_read_back_as_one_table(tmp_path):
    path = tmp_path / "uci_curves.csv.gz"
    curve = {"dataset": "redwine", "flow": "maf", "mode": "vanilla", "seed": 1, "train_loss": 1.5, "val_loglik": -2.25}
    results.append(path, [{**curve, "epoch": 1}])
    results.append(path, [{**curve, "epoch": 2}, {**curve, "epoch": 3}])
    frame = pd.read_csv(path)
    assert list(frame["epoch"]) == [1, 2, 3] and frame["val_loglik"].tolist() == [-2.25] * 3
    with gzip.open(path, "rt") as f:
        assert f.read().count("dataset") == 1


def test_recorded_keys_skip_finished_runs_whatever_the_number_format(tmp_path):
    runs = uci.grid("quick", datasets=["redwine"], flows=["maf"], modes=["vanilla", "mollification"], seeds=[1, 2])
    path = tmp_path / "uci.csv"
    done = {**uci.key(runs[0]), **{c: "" for c in results.FILES["uci.csv"].columns if c not in uci.key(runs[0])}}
    results.append(path, [{**done, "seed": "1", "epochs": "12", "test_loglik": "-12.5"}])  # as a CSV reader sees them
    assert results.recorded(path) == {("redwine", "maf", "official", "vanilla", 1.0, 12.0, "adam-fused", "fp32")}
    assert results.pending(runs, path, uci.key) == runs[1:]
    assert results.pending(runs, tmp_path / "absent.csv", uci.key, name="uci.csv") == runs
    other_epochs = uci.grid("full", datasets=["redwine"], flows=["maf"], modes=["vanilla"], seeds=[1])
    assert results.pending(other_epochs, path, uci.key) == other_epochs  # 150 epochs is another run
    other_variant = uci.grid(
        "quick", datasets=["redwine"], flows=["maf"], modes=["vanilla"], seeds=[1], variants=["paper-text"]
    )
    assert results.pending(other_variant, path, uci.key) == other_variant
    other_matmul = uci.grid("quick", datasets=["redwine"], flows=["maf"], modes=["vanilla"], seeds=[1], matmul="bf16")
    assert results.pending(other_matmul, path, uci.key) == other_matmul  # bf16 products: another run
    toy = toy2d.grid("quick", datasets=["von_mises"], modes=["vanilla"], seeds=[0])
    assert toy2d.key(toy[0]) == {
        "dataset": "von_mises",
        "mode": "vanilla",
        "seed": 0,
        "activation": "relu",
        "iterations": 2000,
    }


def test_provenance_names_the_commit_the_state_of_the_checkout_and_the_date():
    import datetime as dt

    p = results.provenance()
    assert set(p) == {"commit", "dirty", "date"} and len(p["commit"]) >= 7 and p["dirty"] in (True, False)
    assert p["date"] == dt.datetime.now(dt.timezone.utc).date().isoformat()


def _uci_row(seed, score="-12.5", **extra):
    cols = results.FILES["uci.csv"].columns
    row = {c: "" for c in cols}
    row.update(
        dataset="redwine",
        flow="maf",
        variant="official",
        mode="vanilla",
        seed=seed,
        epochs=12,
        optimizer="adam-fused",
        matmul="fp32",
        test_loglik=score,
        **extra,
    )
    return row


def test_a_row_without_a_score_is_not_done_unless_it_records_a_divergence(tmp_path):
    path = tmp_path / "uci.csv"
    results.append(path, [_uci_row(1, "nan"), _uci_row(2, ""), _uci_row(3, "-inf"), _uci_row(4)])
    assert {k[4] for k in results.recorded(path)} == {3.0, 4.0}  # -inf is a result (one test row at zero density)
    toy = tmp_path / "toy2d.csv"
    base = {"dataset": "von_mises", "mode": "vanilla", "activation": "relu", "iterations": 20000}
    results.append(toy, [{**base, "seed": 0, "mmd2": "", "diverged_at": 7508}, {**base, "seed": 1, "mmd2": "nan"}])
    assert {k[2] for k in results.recorded(toy)} == {0.0}  # the diverged run is done; the unscored one is not


def test_a_cut_csv_or_gzip_is_refused_before_anything_is_appended(tmp_path):
    path = tmp_path / "uci.csv"
    results.append(path, [_uci_row(1), _uci_row(2)])
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the last line cut mid-row
    for act in (
        lambda: results.append(path, [_uci_row(3)]),
        lambda: results.recorded(path),
        lambda: results.load("uci.csv", tmp_path),
    ):
        with pytest.raises(results.DamagedResultsError, match="cut.*git checkout"):
            act()
    assert path.read_bytes() == whole[:-7]  # nothing was written
    gz = tmp_path / "uci_curves.csv.gz"
    curve = {"dataset": "redwine", "flow": "maf", "mode": "vanilla", "seed": 1, "epoch": 1}
    results.append(gz, [curve])
    results.append(gz, [{**curve, "epoch": 2}])
    data = gz.read_bytes()
    gz.write_bytes(data[:-5])
    with pytest.raises(results.DamagedResultsError, match="damaged"):
        results.append(gz, [{**curve, "epoch": 3}])
    assert gz.read_bytes() == data[:-5]


def test_the_same_run_twice_is_refused_and_a_run_recorded_meanwhile_is_not_written_again(tmp_path):
    path = tmp_path / "uci.csv"
    with pytest.raises(ValueError, match="same run twice"):
        results.append(path, [_uci_row(1), _uci_row(1)])
    results.append(path, [_uci_row(1)])
    with pytest.warns(UserWarning, match="already recorded"):
        results.append(path, [_uci_row(1, "-11.0"), _uci_row(2)])
    frame = pd.read_csv(path)
    assert frame["seed"].tolist() == [1, 2] and frame["test_loglik"].tolist() == [-12.5, -12.5]


def _append_many(args):
    folder, start = args
    for seed in range(start, start + 40):
        results.append(folder / "uci.csv", [_uci_row(seed)])
        results.append(folder / "uci_curves.csv.gz", [{"dataset": "redwine", "flow": "maf", "seed": seed, "epoch": 1}])


def test_two_processes_appending_to_one_folder_lose_and_duplicate_nothing(tmp_path):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_append_many, [(tmp_path, 0), (tmp_path, 40)])
    frame = pd.read_csv(tmp_path / "uci.csv")
    assert sorted(frame["seed"]) == list(range(80)) and list(frame.columns) == list(results.FILES["uci.csv"].columns)
    curves = pd.read_csv(tmp_path / "uci_curves.csv.gz")
    assert sorted(curves["seed"]) == list(range(80))
    with gzip.open(tmp_path / "uci_curves.csv.gz", "rt") as f:
        assert f.read().count("dataset") == 1  # one header, written once


def test_each_experiments_run_key_is_read_from_its_results_files_key():
    """A run's key is written in one place, ``results.FILES[name].key``: each experiment's ``key(run)`` gives
    exactly those columns (both files' for the images), in order, and tells apart every two runs of a grid that
    differ in a field of its ``IDENTITY`` (the fields that name a run). Fails if the two disagree."""
    from molli_utils.experiments import images, indm, settings

    ablation = settings.IMAGE_ABLATION
    cases = [
        (toy2d, [toy2d.RESULTS], toy2d.grid("quick", modes=toy2d.MODES) + toy2d.grid("quick", activation="leaky_relu")),
        (indm, [indm.RESULTS], indm.grid("quick")),
        (uci, [uci.RESULTS], uci.grid("quick", modes=uci.MODES, variants=["official", "paper-text"])),
        (
            images,
            [images.RESULTS, images.RESULTS_DIGITS],
            images.grid("quick")
            + images.grid(
                "quick", modes=["gaussian"], schedules=list(ablation["schedules"]), taus=list(ablation["taus"])
            )
            + images.grid("full", models=list(images.MODELS), variant="text"),
        ),
    ]
    for module, names, runs in cases:
        columns = list(dict.fromkeys(c for name in names for c in results.FILES[name].key))
        assert all(list(module.key(r)) == columns for r in runs), module.__name__
        named: dict[tuple, set] = {}  # key -> the identities of the runs filed under it
        for r in runs:
            named.setdefault(tuple(module.key(r).values()), set()).add(tuple(getattr(r, f) for f in module.IDENTITY))
        assert len(named) > 1 and all(len(v) == 1 for v in named.values()), (module.__name__, module.IDENTITY)
    # the curves of a toy run are filed under its run key (and the step)
    assert results.FILES[toy2d.CURVES].key == (*results.FILES[toy2d.RESULTS].key, "step")
