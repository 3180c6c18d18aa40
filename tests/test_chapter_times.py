"""tools.chapter_times: chapters are timed by executing them, the T4 estimate comes from counted FLOPs, the colab
profile of the GPU chapter fits a free Colab session, and the book's table is generated from the results file."""

import csv
import math

import nbformat
import pytest
import torch

from tools import chapter_times as ct


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_measure_executes_a_chapter_and_renders_the_table(tmp_path):
    results, table = tmp_path / "times.csv", tmp_path / "table.csv"
    assert (
        ct.main(
            [
                "measure",
                "--profile",
                "quick",
                "--chapters",
                "08_takeaways",
                "--results",
                str(results),
                "--table",
                str(table),
            ]
        )
        == 0
    )
    (row,) = list(csv.DictReader(results.open()))
    assert (row["chapter"], row["profile"], row["kind"], row["detail"]) == (
        "08_takeaways",
        "quick",
        "measured, this CPU",
        "",
    )
    assert 1 < float(row["seconds"]) < 1200 and row["machine"] and row["commit"]
    rendered = {r["chapter"]: r for r in csv.DictReader(table.open())}
    assert list(rendered) == [ct.label(p.stem) for p in ct.chapters()]  # every chapter of the toc, in its order
    assert rendered[ct.label("08_takeaways")]["quick (this CPU)"] == ct._duration(row["seconds"])
    assert rendered[ct.label("03_toys")]["quick (this CPU)"] == ""  # not measured: left empty, never invented


def test_measure_says_when_a_notebook_failed_or_ran_another_profile(tmp_path):
    fails = _notebook(tmp_path / "fails.ipynb", "raise ValueError('boom')")
    fallback = _notebook(tmp_path / "fallback.ipynb", "print('profile=quick, device=cpu')")
    rows = ct.measure("colab", [fails, fallback], log=lambda _: None)
    assert rows[0]["seconds"] == "" and rows[0]["detail"].startswith("FAILED") and "boom" in rows[0]["detail"]
    assert float(rows[1]["seconds"]) > 0 and rows[1]["detail"].startswith("ran the quick profile")
    with pytest.raises(ValueError, match="unknown profile"):
        ct.measure("fast", [])


def test_merge_replaces_only_the_same_chapter_profile_and_kind(tmp_path):
    path = tmp_path / "t.csv"
    ct.merge(
        [
            {"chapter": "a", "profile": "quick", "kind": "k", "seconds": "1", "detail": ""},
            {"chapter": "b", "profile": "quick", "kind": "k", "seconds": "2", "detail": ""},
        ],
        path,
    )
    rows = ct.merge([{"chapter": "a", "profile": "quick", "kind": "k", "seconds": "3", "detail": ""}], path)
    assert sorted((r["chapter"], r["seconds"]) for r in rows) == [("a", "3"), ("b", "2")]


def test_counted_flops_are_those_of_the_convolutions():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    flops, ops = ct.count(lambda: conv(torch.rand(2, 3, 16, 16)))
    assert flops == 2 * 2 * 8 * 16 * 16 * 3 * 3 * 3 and ops >= 1  # 2 FLOPs per multiply-add
    inc, _ = ct.inception_flops()
    assert 11e9 < inc < 12e9, "Inception-v3 at 299 x 299: 5.7 G multiply-adds = 11.4 GFLOP"
    assert ct.gpu_seconds(ct.UTILISATION * 8.1e12, 0, "fp32") == pytest.approx(1.0)
    assert ct.gpu_seconds(0, 1000, "fp16") == pytest.approx(1000 * ct.LAUNCH_SECONDS)


def test_the_colab_profile_of_the_gpu_chapters_fits_a_colab_session():
    for name, runs in ct.GPU_CHAPTERS.items():
        est = ct.estimate_images(runs(), log=lambda _: None)
        assert math.isfinite(est["seconds"]) and est["seconds"] > 60
        assert est["seconds"] <= 60 * 60, (
            f"{name}: the colab profile needs about {est['seconds'] / 60:.0f} min on a T4 by the FLOP estimate "
            "(more than one hour): shrink BUDGETS['colab'] in molli_utils/experiments/images/config.py"
        )
        assert est["detail"].startswith("ESTIMATE")


def test_the_book_table_is_generated_from_the_results_file(tmp_path):
    rows = list(csv.DictReader(ct.RESULTS.open()))
    assert rows, "molli_utils/results/chapter_times.csv is empty: python -m tools.chapter_times estimate"
    assert {r["kind"] for r in rows} <= {"measured, this CPU", "estimate, T4"}
    assert ct.render(rows, tmp_path / "table.csv").read_text() == ct.TABLE.read_text(), (
        "book/runtime_data/table.csv is not the rendering of chapter_times.csv: python -m tools.chapter_times table"
    )
    page = (ct.ROOT / "book" / "runtimes.md").read_text()
    assert ":file: runtime_data/table.csv" in page and "python -m tools.chapter_times" in page
    assert "book/runtimes" in (ct.ROOT / "_toc.yml").read_text()
