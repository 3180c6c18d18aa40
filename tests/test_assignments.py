"""The graded assignments: instructor notebooks pass their checks, student versions fail only
with NotImplementedError, the checks catch subtly wrong code, and make_student strips solutions."""

import ast
import copy
import math
import os
import pathlib
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
import torch
from nbclient import NotebookClient

from molli_utils import blur, blur_schedule, checks, gaussian, mmd2, sigmoid_schedule
from molli_utils.assignments import ANSWER_CELL, EXERCISE_CELL, make_student, stub_source
from molli_utils.mollifiers import dct_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))


def _is_solution(cell):
    return "solution" in cell.get("metadata", {}).get("tags", [])


def _execute(nb, path, monkeypatch, allow_errors):
    monkeypatch.setenv("MOLLI_PROFILE", "quick")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _stream_text(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")


def test_there_are_two_assignments_with_solutions():
    assert [p.name for p in ASSIGNMENTS] == ["assignment1_gaussian_mollification.ipynb", "assignment2_blurring.ipynb"]
    for path in ASSIGNMENTS:
        nb = nbformat.read(path, as_version=4)
        assert sum(_is_solution(c) and c.cell_type == "code" for c in nb.cells) >= 3
        assert any("checks.check_" in c.source for c in nb.cells if c.cell_type == "code")


# --------------------------------------------------------------------------- (a) and (b): the notebooks


@pytest.mark.notebook
@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.name)
def test_instructor_version_passes_every_check(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    check_cells = [c for c in nb.cells if c.cell_type == "code" and "checks.check_" in c.source]
    errors = _execute(nb, path, monkeypatch, allow_errors=False)
    assert not errors
    text = _stream_text(nb)
    assert text.count("passed: ") >= len(check_cells), text


@pytest.mark.notebook
@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.name)
def test_student_version_fails_only_with_not_implemented(path, monkeypatch):
    student = make_student(nbformat.read(path, as_version=4))
    errors = _execute(student, path, monkeypatch, allow_errors=True)
    names = [e["ename"] for e in errors]
    assert names, "the student version should stop at the unfinished exercises"
    assert set(names) == {"NotImplementedError"}, [(e["ename"], e["evalue"]) for e in errors]
    assert "passed: " not in _stream_text(student)


# --------------------------------------------------------------------------- (c): the checks


def test_checks_pass_the_reference_implementations(capsys):
    checks.check_sigmoid_schedule(sigmoid_schedule)
    checks.check_gaussian_mollifier(gaussian)
    checks.check_dct_matrix(dct_matrix)
    checks.check_blur(blur)
    checks.check_blur_schedule(blur_schedule)
    out = capsys.readouterr().out
    assert out.count("passed: ") == 5


def _unclipped(t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9):
    u = torch.as_tensor(t, dtype=torch.float64) / T
    lo, hi = torch.sigmoid(torch.tensor(start / tau)), torch.sigmoid(torch.tensor(end / tau))
    return (hi - torch.sigmoid((u * (end - start) + start) / tau)) / (hi - lo)


def _fixed_tau(t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9):
    return sigmoid_schedule(t, T, start=start, end=end, clip_min=clip_min)


def _no_clip_past_T(t, T, **kw):  # clamps the lower end at 0 only: wrong at t = T and beyond
    return torch.clamp(_unclipped(t, T, **kw), 0.0, 1.0)


@pytest.mark.parametrize("wrong", [_unclipped, _fixed_tau, _no_clip_past_T], ids=lambda f: f.__name__)
def test_sigmoid_check_rejects_wrong_schedules(wrong):
    with pytest.raises(AssertionError, match="sigmoid schedule"):
        checks.check_sigmoid_schedule(wrong)


def _s_not_sqrt_s(x, s):
    s = torch.as_tensor(s, dtype=x.dtype)
    return torch.sqrt(1 - s) * x + s * torch.randn_like(x)


def _one_minus_s(x, s):
    s = torch.as_tensor(s, dtype=x.dtype)
    return (1 - s) * x + torch.sqrt(s) * torch.randn_like(x)


def _same_noise(x, s):
    g = torch.Generator().manual_seed(0)
    s = torch.as_tensor(s, dtype=x.dtype)
    return torch.sqrt(1 - s) * x + torch.sqrt(s) * torch.randn(x.shape, generator=g, dtype=x.dtype)


def _first_level_only(x, s):  # ignores per-row noise levels
    s = float(torch.as_tensor(s).reshape(-1)[0])
    return math.sqrt(1 - s) * x + math.sqrt(s) * torch.randn_like(x)


@pytest.mark.parametrize("wrong", [_s_not_sqrt_s, _one_minus_s, _same_noise, _first_level_only], ids=lambda f: f.__name__)
def test_mollifier_check_rejects_wrong_mollifiers(wrong):
    with pytest.raises(AssertionError):
        checks.check_gaussian_mollifier(wrong)


def test_checks_let_the_students_own_errors_through():
    def unfinished(*args, **kwargs):
        raise NotImplementedError("Exercise: implement it")

    for check in (checks.check_sigmoid_schedule, checks.check_gaussian_mollifier, checks.check_ring_data,
                  checks.check_dct_matrix, checks.check_blur, checks.check_blur_schedule):
        with pytest.raises(NotImplementedError):
            check(unfinished)


def _dct_without_c0(n):
    c = dct_matrix(n)
    c[0] *= math.sqrt(2.0)
    return c


def _blur_wrong_frequencies(x, t):  # pi k / H without the square
    h, w = x.shape[-2:]
    ch, cw = dct_matrix(h, dtype=x.dtype), dct_matrix(w, dtype=x.dtype)
    lam = math.pi * torch.arange(h, dtype=x.dtype)[:, None] / h + math.pi * torch.arange(w, dtype=x.dtype)[None, :] / w
    return ch.T @ (torch.exp(-lam * t) * (ch @ x @ cw.T)) @ cw


def _blur_square_only(x, t):  # divides both frequencies by H: right for square images only
    h, w = x.shape[-2:]
    ch, cw = dct_matrix(h, dtype=x.dtype), dct_matrix(w, dtype=x.dtype)
    lam = (math.pi * torch.arange(h, dtype=x.dtype)[:, None] / h) ** 2 + (math.pi * torch.arange(w, dtype=x.dtype)[None, :] / h) ** 2
    return ch.T @ (torch.exp(-lam * t) * (ch @ x @ cw.T)) @ cw


def _linear_blur_schedule(t, T, image_size, sigma_min=0.5, sigma_max=None):  # sigma linear, not log-spaced
    sigma_max = image_size / 2 if sigma_max is None else sigma_max
    u = torch.clamp(torch.as_tensor(t, dtype=torch.float64) / T, max=1.0)
    return ((1 - u) * sigma_max + u * sigma_min) ** 2 / 2


def test_blur_checks_reject_wrong_code():
    with pytest.raises(AssertionError, match="dct_matrix"):
        checks.check_dct_matrix(_dct_without_c0)
    with pytest.raises(AssertionError, match="blur"):
        checks.check_blur(_blur_wrong_frequencies)
    with pytest.raises(AssertionError, match="not square"):
        checks.check_blur(_blur_square_only)
    with pytest.raises(AssertionError, match="blur schedule"):
        checks.check_blur_schedule(_linear_blur_schedule)
    wrong_default = lambda t, T, size, sigma_min=0.5, sigma_max=None: blur_schedule(t, T, size, sigma_min=sigma_min, sigma_max=sigma_max or size)  # noqa: E731
    with pytest.raises(AssertionError, match="blur schedule, t = 0"):
        checks.check_blur_schedule(wrong_default)


def _ring(n, seed=0, num_modes=8, radius=2.0, std=0.1, generator=True):
    gen = torch.Generator().manual_seed(seed) if generator else None
    k = torch.randint(num_modes, (n,), generator=gen)
    a = 2 * math.pi * k.double() / num_modes
    c = radius * torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    return (c + std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


def test_ring_check(capsys):
    checks.check_ring_data(_ring)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="reproducible"):
        checks.check_ring_data(lambda n, seed=0: _ring(n, seed, generator=False))
    with pytest.raises(AssertionError, match="std"):
        checks.check_ring_data(lambda n, seed=0: _ring(n, seed, std=0.2))
    with pytest.raises(AssertionError, match="float32"):
        checks.check_ring_data(lambda n, seed=0: _ring(n, seed).double())


def test_mmd_scores_check(capsys):
    x_test, x_train = _ring(500, seed=1), _ring(500, seed=2)
    samples = {"vanilla": _ring(500, seed=3), "mollified": _ring(500, seed=4)}
    scores = {run: mmd2(x, x_test) for run, x in samples.items()}
    checks.check_mmd_scores(scores, samples, x_test)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="held-out"):  # scored against the training data
        checks.check_mmd_scores({run: mmd2(x, x_train) for run, x in samples.items()}, samples, x_test)
    with pytest.raises(AssertionError, match="has not learned"):  # an untrained flow draws N(0, I)
        untrained = {"vanilla": torch.randn(500, 2), "mollified": samples["mollified"]}
        checks.check_mmd_scores({run: mmd2(x, x_test) for run, x in untrained.items()}, untrained, x_test)
    with pytest.raises(AssertionError, match="missing"):
        checks.check_mmd_scores({"vanilla": scores["vanilla"]}, samples, x_test)


def _table(image, horizon, heat_scale=1.0, noise_root=True):
    rows, centred, gen = [], 2 * image - 1, torch.Generator().manual_seed(1234)
    for step in (0, horizon // 2, horizon):
        s = float(sigmoid_schedule(step, horizon))
        heat = float(blur_schedule(step, horizon, image.shape[-1])) * heat_scale
        level = s if noise_root else s**2
        noised = (gaussian(centred, level, generator=gen) + 1) / 2
        rows.append({"step": step, "noise_level": s, "heat_time": heat,
                     "mse_noise": ((noised - image) ** 2).mean().item(),
                     "mse_blur": ((blur(image, heat) - image) ** 2).mean().item()})
    return pd.DataFrame(rows)


def test_noise_vs_blur_check(capsys):
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    checks.check_noise_vs_blur(_table(image, 100), image, horizon=100)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="heat_time"):
        checks.check_noise_vs_blur(_table(image, 100, heat_scale=2.0), image, horizon=100)
    with pytest.raises(AssertionError, match="mse_noise"):
        checks.check_noise_vs_blur(_table(image, 100, noise_root=False), image, horizon=100)
    with pytest.raises(AssertionError, match="lacks the columns"):
        checks.check_noise_vs_blur(_table(image, 100).drop(columns="mse_blur"), image, horizon=100)


# --------------------------------------------------------------------------- (d): make_student


def _body_lines(source):
    """Stripped lines of the function bodies of a solution cell (docstrings excluded)."""
    lines, out = source.splitlines(), set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                out |= {ln.strip() for ln in lines[stmt.lineno - 1 : stmt.end_lineno] if ln.strip()}
    return out


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.name)
def test_make_student_strips_only_the_solutions(path):
    nb = nbformat.read(path, as_version=4)
    original = copy.deepcopy(nb)
    student = make_student(nb)
    assert nb == original, "make_student must not modify its input"
    assert len(student.cells) == len(nb.cells)
    for before, after in zip(nb.cells, student.cells):
        assert after.get("id") == before.get("id")
        if not _is_solution(before):
            assert nbformat.writes(nbformat.v4.new_notebook(cells=[after])) == nbformat.writes(
                nbformat.v4.new_notebook(cells=[before])), f"non-solution cell {before.get('id')} changed"
            continue
        if before.cell_type == "markdown":
            assert after.source == ANSWER_CELL
            continue
        assert "raise NotImplementedError" in after.source
        leaked = _body_lines(before.source) & {ln.strip() for ln in after.source.splitlines()}
        assert not leaked, f"solution lines left in cell {before.get('id')}: {leaked}"
        old = {n.name: ast.dump(n.args) for n in ast.parse(before.source).body if isinstance(n, ast.FunctionDef)}
        new = {n.name: ast.dump(n.args) for n in ast.parse(after.source).body if isinstance(n, ast.FunctionDef)}
        assert new == old, "the student version must keep every signature"
    text = nbformat.writes(student)
    for cell in nb.cells:
        if _is_solution(cell) and cell.cell_type == "markdown":
            assert cell.source[40:120] not in text, "a written answer leaked into the student version"


def test_make_student_on_edge_cases():
    cells = [
        nbformat.v4.new_code_cell("import torch\n\n\n@torch.no_grad()\ndef f(x,\n      y=1):\n"
                                  '    """Doc."""\n    secret = x + y\n    return secret\n\n\n'
                                  "def g(x): return x * 42\n\nRESULT = f(1)\n"),
        nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)"),
        nbformat.v4.new_code_cell("%timeit 1 + 1"),
        nbformat.v4.new_code_cell("print('kept')"),
    ]
    for cell in cells[:3]:
        cell.metadata["tags"] = ["solution"]
    cells[3].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    cells[3].execution_count = 3
    student = make_student(nbformat.v4.new_notebook(cells=cells))
    first = student.cells[0].source
    assert "@torch.no_grad()" in first and "def f(x,\n      y=1):" in first and '"""Doc."""' in first
    assert "def g(x):" in first and "import torch" in first
    assert "secret" not in first and "42" not in first and "RESULT" not in first
    assert first.count("raise NotImplementedError") == 2
    namespace = {}
    exec(compile(first, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="implement f"):
        namespace["f"](1)
    assert student.cells[1].source == EXERCISE_CELL == student.cells[2].source
    assert student.cells[3].source == "print('kept')"
    assert student.cells[3].outputs == [] and student.cells[3].execution_count is None
    assert stub_source("x = 1") == EXERCISE_CELL


def test_make_student_command_line(tmp_path):
    out = tmp_path / "student"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), str(ROOT / "book" / "assignments"), str(out)],
                   check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in ASSIGNMENTS]
    for path in ASSIGNMENTS:
        assert nbformat.read(out / path.name, as_version=4) == make_student(nbformat.read(path, as_version=4))
