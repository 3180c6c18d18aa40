"""The graded assignments: instructor notebooks pass their checks, student versions fail only
with NotImplementedError, the checks catch subtly wrong code, and make_student strips solutions."""

import ast
import copy
import math
import os
import pathlib
import subprocess
import sys
import time

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from book_cache import share_with_the_book
from nbclient import NotebookClient

from molli_utils import blur, blur_schedule, check_tools, checks, gaussian, mmd2, sigmoid_schedule
from molli_utils.assignments import ANSWER_CELL, EXERCISE_CELL, make_student, stub_source
from molli_utils.grade import expected_checks, records
from molli_utils.mollifiers import dct_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))


def _is_solution(cell):
    return "solution" in cell.get("metadata", {}).get("tags", [])


def _execute(nb, path, monkeypatch, allow_errors):
    monkeypatch.setenv("MOLLI_PROFILE", "quick")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline figures, as in the book
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]


def _stream_text(nb):
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )


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
    start = time.perf_counter()
    errors = _execute(nb, path, monkeypatch, allow_errors=False)
    assert not errors
    recs = records(nb)
    assert {r["check"] for r in recs} == set(expected_checks(nb)), "every check the notebook calls leaves a record"
    assert recs and all(r["status"] == "passed" for r in recs), recs
    share_with_the_book(
        path, nb, time.perf_counter() - start
    )  # the book's build shows this execution instead of running it again


@pytest.mark.notebook
@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.name)
def test_student_version_fails_only_with_not_implemented(path, monkeypatch):
    student = make_student(nbformat.read(path, as_version=4))
    errors = _execute(student, path, monkeypatch, allow_errors=True)
    names = [e["ename"] for e in errors]
    assert names, "the student version should stop at the unfinished exercises"
    assert set(names) == {"NotImplementedError"}, [(e["ename"], e["evalue"]) for e in errors]
    recs = records(student)
    assert recs and {r["status"] for r in recs} == {"not attempted"}, recs
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


def test_every_check_records_its_verdict(monkeypatch):
    """The record (what the grader reads): passed, failed with the check's message, not attempted."""
    seen = []
    monkeypatch.setattr(check_tools, "record", lambda *a: seen.append(a))  # what every check calls
    checks.check_dct_matrix(dct_matrix)
    with pytest.raises(AssertionError):
        checks.check_dct_matrix(_dct_without_c0)
    with pytest.raises(NotImplementedError):
        checks.check_dct_matrix(_unfinished)
    with pytest.raises(ZeroDivisionError):
        checks.check_dct_matrix(lambda n: 1 / 0)
    assert [(name, status) for name, status, _ in seen] == [
        ("check_dct_matrix", "passed"),
        ("check_dct_matrix", "failed"),
        ("check_dct_matrix", "not attempted"),
        ("check_dct_matrix", "failed"),
    ]
    assert "dct_matrix(1)" in seen[1][2] and "ZeroDivisionError" in seen[3][2]
    assert checks.CHECKS == tuple(n for n in checks.__all__ if n.startswith("check_")) and len(checks.CHECKS) == 8


def test_record_in_ipython_is_a_mime_bundle(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    entry = checks.record("check_blur", "passed", "all right")
    assert shown == [({checks.RECORD_MIME: entry, "text/plain": "passed: all right"}, True)]
    assert entry == {"check": "check_blur", "status": "passed", "message": "all right"}
    with pytest.raises(ValueError, match="unknown status"):
        checks.record("check_blur", "ok", "")


def _unfinished(*args, **kwargs):
    raise NotImplementedError("Exercise: implement it")


def test_checks_let_the_students_own_errors_through():
    for check in (
        checks.check_sigmoid_schedule,
        checks.check_gaussian_mollifier,
        checks.check_ring_data,
        checks.check_dct_matrix,
        checks.check_blur,
        checks.check_blur_schedule,
    ):
        with pytest.raises(NotImplementedError):
            check(_unfinished)


# sigmoid schedule: each wrong version, and the words the message must contain


def _sigmoid(t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9, *, ramp_tau=True, end_tau=True, clip=True, clamp=True):
    u = torch.as_tensor(t, dtype=torch.float64) / T
    u = torch.clamp(u, max=1.0) if clamp else u
    lo = torch.sigmoid(torch.tensor(start / tau if end_tau else start, dtype=torch.float64))
    hi = torch.sigmoid(torch.tensor(end / tau if end_tau else end, dtype=torch.float64))
    ramp = (u * (end - start) + start) / tau if ramp_tau else u * (end - start) / tau + start
    gamma = (hi - torch.sigmoid(ramp)) / (hi - lo)
    return gamma.clamp(clip_min, 1.0) if clip else gamma


WRONG_SCHEDULES = {
    # tau divides the ramp only, not its start: right whenever start = 0 or tau = 1
    "tau_on_the_ramp_only": (lambda t, T, **kw: _sigmoid(t, T, **kw, ramp_tau=False), "start, end and tau all changed"),
    "endpoints_without_tau": (lambda t, T, **kw: _sigmoid(t, T, **kw, end_tau=False), "wrong values"),
    "unclipped": (lambda t, T, **kw: _sigmoid(t, T, **kw, clip=False), "t = T"),
    "fixed_tau": (
        lambda t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9: sigmoid_schedule(
            t, T, start=start, end=end, clip_min=clip_min
        ),
        "tau = 0.3",
    ),
    "float32": (lambda t, T, **kw: _sigmoid(t, T, **kw).float(), "compute in float64"),
    "flattened": (lambda t, T, **kw: _sigmoid(t, T, **kw).reshape(-1), "wrong shape"),
    "ignores_clip_min": (
        lambda t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9: _sigmoid(t, T, start=start, end=end, tau=tau),
        "clip_min = 1e-4",
    ),
}


@pytest.mark.parametrize("name", WRONG_SCHEDULES)
def test_sigmoid_check_rejects_wrong_schedules(name):
    wrong, words = WRONG_SCHEDULES[name]
    with pytest.raises(AssertionError, match="sigmoid schedule") as err:
        checks.check_sigmoid_schedule(wrong)
    assert words.lower() in str(err.value).lower(), str(err.value)


def test_sigmoid_check_shows_inputs_as_values():
    wrong = WRONG_SCHEDULES["tau_on_the_ramp_only"][0]
    with pytest.raises(AssertionError) as err:
        checks.check_sigmoid_schedule(wrong)
    message = str(err.value)
    assert (
        "fn(torch.tensor([0.0, 125.0, 250.0, 375.0, 500.0, 625.0, 750.0, 875.0, 1000.0], dtype=torch.float64), "
        "1000, start=-2.0, end=2.5, tau=0.4)" in message
    ), message
    assert "fn(t," not in message


def test_float32_gets_the_float64_hint_not_a_value_mismatch():
    with pytest.raises(AssertionError) as err:
        checks.check_sigmoid_schedule(
            lambda t, T, **kw: sigmoid_schedule(torch.as_tensor(t, dtype=torch.float32), T, **kw)
        )
    assert "compute in float64" in str(err.value).lower() and "wrong values" not in str(err.value)
    with pytest.raises(AssertionError, match="(?i)compute in float64"):  # NumPy float32 too
        checks.check_sigmoid_schedule(lambda t, T, **kw: np.asarray(sigmoid_schedule(t, T, **kw), dtype=np.float32))


# Gaussian mollifier


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


def _noise_of_shape(shape_of):
    def mollify(x, s):
        s = torch.as_tensor(s, dtype=x.dtype)
        return torch.sqrt(1 - s) * x + torch.sqrt(s) * torch.randn(shape_of(x, s), dtype=x.dtype)

    return mollify


def _float32_out(x, s):
    s = torch.as_tensor(s, dtype=torch.float32)
    return torch.sqrt(1 - s) * x.float() + torch.sqrt(s) * torch.randn(x.shape)


WRONG_MOLLIFIERS = {
    "s_not_sqrt_s": (_s_not_sqrt_s, "not gamma * eps"),
    "one_minus_s": (_one_minus_s, "sqrt(1 - gamma)"),
    "same_noise_every_call": (_same_noise, "fresh"),
    "first_level_only": (_first_level_only, "one per row"),
    "noise_shared_by_rows": (_noise_of_shape(lambda x, s: x.shape[-1:]), "same in every row"),
    "noise_shared_by_columns": (_noise_of_shape(lambda x, s: (*x.shape[:-1], 1)), "same in every column"),
    "noise_of_the_shape_of_s": (_noise_of_shape(lambda x, s: s.shape), "shape"),
    "noise_with_an_extra_dim": (_noise_of_shape(lambda x, s: (x.shape[0], 1, *x.shape[1:])), "randn_like(x)"),
    "float32_output": (_float32_out, "dtype"),
}


@pytest.mark.parametrize("name", WRONG_MOLLIFIERS)
def test_mollifier_check_rejects_wrong_mollifiers(name):
    wrong, words = WRONG_MOLLIFIERS[name]
    with pytest.raises(AssertionError) as err:
        checks.check_gaussian_mollifier(wrong)
    assert words in str(err.value), str(err.value)


def test_mollifier_check_hints_at_the_noise_shape():
    with pytest.raises(AssertionError) as err:
        checks.check_gaussian_mollifier(WRONG_MOLLIFIERS["noise_shared_by_rows"][0])
    assert "torch.randn_like(x)" in str(err.value) and "variance" not in str(err.value)


# DCT matrix, blur, blur schedule


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
    lam = (math.pi * torch.arange(h, dtype=x.dtype)[:, None] / h) ** 2 + (
        math.pi * torch.arange(w, dtype=x.dtype)[None, :] / h
    ) ** 2
    return ch.T @ (torch.exp(-lam * t) * (ch @ x @ cw.T)) @ cw


def _linear_blur_schedule(t, T, image_size, sigma_min=0.5, sigma_max=None):  # sigma linear, not log-spaced
    sigma_max = image_size / 2 if sigma_max is None else sigma_max
    u = torch.clamp(torch.as_tensor(t, dtype=torch.float64) / T, max=1.0)
    return ((1 - u) * sigma_max + u * sigma_min) ** 2 / 2


def _log_blur_schedule(t, T, image_size, sigma_min=0.5, sigma_max=None, clamp=True, square=True):
    sigma_max = image_size / 2 if sigma_max is None else sigma_max
    u = torch.as_tensor(t, dtype=torch.float64) / T
    u = torch.clamp(u, max=1.0) if clamp else u
    sigma = torch.exp((1 - u) * math.log(sigma_max) + u * math.log(sigma_min))
    return sigma**2 / 2 if square else sigma


WRONG_BLUR_CODE = {
    "dct_without_c0": (checks.check_dct_matrix, _dct_without_c0, "dct_matrix(1)"),
    "dct_transposed": (
        checks.check_dct_matrix,
        lambda n: dct_matrix(n).T.contiguous(),
        "dct_matrix(5)",
    ),  # symmetric for n = 2
    "dct_float32": (checks.check_dct_matrix, lambda n: dct_matrix(n, dtype=torch.float32), "compute in float64"),
    "dct_unnormalised": (checks.check_dct_matrix, lambda n: dct_matrix(n) * math.sqrt(n), "dct_matrix(2)"),
    "blur_wrong_frequencies": (checks.check_blur, _blur_wrong_frequencies, "wrong values"),
    "blur_square_only": (checks.check_blur, _blur_square_only, "not square"),
    "blur_half_time": (checks.check_blur, lambda x, h: blur(x, h / 2), "h = 1"),
    "blur_float64_for_float32": (checks.check_blur, lambda x, t: blur(x.double(), t), "float32"),
    "blur_schedule_linear_sigma": (checks.check_blur_schedule, _linear_blur_schedule, "blur schedule"),
    "blur_schedule_sigma_max_default": (
        checks.check_blur_schedule,
        lambda t, T, size, sigma_min=0.5, sigma_max=None: blur_schedule(
            t, T, size, sigma_min=sigma_min, sigma_max=sigma_max or size
        ),
        "blur schedule, t = 0",
    ),
    "blur_schedule_not_clamped": (
        checks.check_blur_schedule,
        lambda *a, **k: _log_blur_schedule(*a, **k, clamp=False),
        "t = 2T",
    ),
    "blur_schedule_sigma_not_heat": (
        checks.check_blur_schedule,
        lambda *a, **k: _log_blur_schedule(*a, **k, square=False),
        "t = 0",
    ),
    "blur_schedule_float32": (
        checks.check_blur_schedule,
        lambda *a, **k: _log_blur_schedule(*a, **k).float(),
        "compute in float64",
    ),
}


@pytest.mark.parametrize("name", WRONG_BLUR_CODE)
def test_blur_checks_reject_wrong_code(name):
    check, wrong, words = WRONG_BLUR_CODE[name]
    with pytest.raises(AssertionError) as err:
        check(wrong)
    assert words.lower() in str(err.value).lower(), str(err.value)


def test_blur_schedule_check_shows_inputs_as_values():
    with pytest.raises(AssertionError) as err:
        checks.check_blur_schedule(_linear_blur_schedule)
    assert "fn(torch.tensor(500.0" in str(err.value) or "fn(500.0, 1000, 32)" in str(err.value), str(err.value)


# ring data and MMD scores


def _ring(n, seed=0, num_modes=8, radius=2.0, std=0.1, generator=True, offset=0.0, modes_drawn=None):
    gen = torch.Generator().manual_seed(seed) if generator else None
    k = torch.randint(modes_drawn or num_modes, (n,), generator=gen)
    a = 2 * math.pi * k.double() / num_modes + offset
    c = radius * torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    return (c + std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


WRONG_RINGS = {
    "not_reproducible": (lambda n, seed=0: _ring(n, seed, generator=False), "reproducible"),
    "seed_ignored": (lambda n, seed=0: _ring(n, 0), "seed must change"),
    "wide_modes": (lambda n, seed=0: _ring(n, seed, std=0.2), "std"),
    "float64": (lambda n, seed=0: _ring(n, seed).double(), "float32"),
    "transposed": (lambda n, seed=0: _ring(n, seed).T, "shape"),
    "radius_one": (lambda n, seed=0: _ring(n, seed, radius=1.0), "farther than 6 std"),
    "rotated_by_half_a_mode": (lambda n, seed=0: _ring(n, seed, offset=math.pi / 8), "farther than 6 std"),
    "a_mode_missing": (lambda n, seed=0: _ring(n, seed, modes_drawn=7), "equally weighted"),
    "numpy": (lambda n, seed=0: _ring(n, seed).numpy(), "torch.Tensor"),
}


def test_ring_check_accepts_the_reference(capsys):
    checks.check_ring_data(_ring)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name", WRONG_RINGS)
def test_ring_check_rejects_wrong_data(name):
    wrong, words = WRONG_RINGS[name]
    with pytest.raises(AssertionError, match=words):
        checks.check_ring_data(wrong)


def test_mmd_scores_check(capsys):
    x_test, x_train = _ring(500, seed=1), _ring(500, seed=2)
    samples = {"vanilla": _ring(500, seed=3), "mollified": _ring(500, seed=4)}
    scores = {run: mmd2(x, x_test) for run, x in samples.items()}
    checks.check_mmd_scores(scores, samples, x_test)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="held-out"):  # scored against the training data
        checks.check_mmd_scores({run: mmd2(x, x_train) for run, x in samples.items()}, samples, x_test)
    with pytest.raises(AssertionError, match="held-out"):  # the two scores swapped
        checks.check_mmd_scores({"vanilla": scores["mollified"], "mollified": scores["vanilla"]}, samples, x_test)
    with pytest.raises(AssertionError, match="held-out"):  # another kernel length scale
        checks.check_mmd_scores({run: mmd2(x, x_test, lengthscale=0.5) for run, x in samples.items()}, samples, x_test)
    with pytest.raises(AssertionError, match="has not learned"):  # an untrained flow draws N(0, I)
        untrained = {"vanilla": torch.randn(500, 2), "mollified": samples["mollified"]}
        checks.check_mmd_scores({run: mmd2(x, x_test) for run, x in untrained.items()}, untrained, x_test)
    with pytest.raises(AssertionError, match="missing"):
        checks.check_mmd_scores({"vanilla": scores["vanilla"]}, samples, x_test)
    with pytest.raises(AssertionError, match="nan or inf"):  # a diverged flow's samples, not filtered
        bad = {**samples, "mollified": torch.cat([samples["mollified"], torch.full((1, 2), float("nan"))])}
        checks.check_mmd_scores(scores, bad, x_test)
    with pytest.raises(AssertionError, match="finite number"):
        checks.check_mmd_scores({**scores, "vanilla": "0.01"}, samples, x_test)


# noise against blur


def _table(image, horizon, heat_scale=1.0, noise_root=True, tau=0.7, blur_of=None, steps=None):
    rows, centred, gen = [], 2 * image - 1, torch.Generator().manual_seed(1234)
    for step in steps or (0, horizon // 2, horizon):
        s = float(sigmoid_schedule(step, horizon, tau=tau))
        heat = float(blur_schedule(step, horizon, image.shape[-1])) * heat_scale
        level = s if noise_root else s**2
        noised = (gaussian(centred, level, generator=gen) + 1) / 2
        blurred = blur(image if blur_of is None else blur_of(image), heat)
        rows.append(
            {
                "step": step,
                "noise_level": s,
                "heat_time": heat,
                "mse_noise": ((noised - image) ** 2).mean().item(),
                "mse_blur": ((blurred - image) ** 2).mean().item(),
            }
        )
    return pd.DataFrame(rows)


def test_noise_vs_blur_check(capsys):
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    checks.check_noise_vs_blur(_table(image, 100), image, horizon=100)
    assert "passed" in capsys.readouterr().out
    wrong = {
        "heat_time": _table(image, 100, heat_scale=2.0),
        "mse_noise": _table(image, 100, noise_root=False),
        "noise_level": _table(image, 100, tau=0.5),
        "mse_blur": _table(image, 100, blur_of=lambda x: 2 * x - 1),  # blurred the centred image
        "lacks the columns": _table(image, 100).drop(columns="mse_blur"),
        "at least 3 steps": _table(image, 100, steps=(0, 100)),
    }
    for words, table in wrong.items():
        with pytest.raises(AssertionError, match=words):
            checks.check_noise_vs_blur(table, image, horizon=100)


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
                nbformat.v4.new_notebook(cells=[before])
            ), f"non-solution cell {before.get('id')} changed"
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
        nbformat.v4.new_code_cell(
            "import torch\n\n\n@torch.no_grad()\ndef f(x,\n      y=1):\n"
            '    """Doc."""\n    secret = x + y\n    return secret\n\n\n'
            "def g(x): return x * 42\n\nRESULT = f(1)\n"
        ),
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
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_student.py"), str(ROOT / "book" / "assignments"), str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in ASSIGNMENTS]
    for path in ASSIGNMENTS:
        assert nbformat.read(out / path.name, as_version=4) == make_student(nbformat.read(path, as_version=4))


def test_assignments_need_nbformat_only_when_used(monkeypatch):
    """molli_utils.assignments imports without nbformat (an optional extra) and says how to get it when used."""
    import importlib

    import molli_utils.assignments as assignments

    monkeypatch.setitem(sys.modules, "nbformat", None)  # as if nbformat were not installed
    fresh = importlib.reload(assignments)
    with pytest.raises(ImportError, match=r"molli-utils\[teach\]"):
        fresh.make_student({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    monkeypatch.undo()
    importlib.reload(assignments)


def test_make_student_tool_runs_without_the_package_imports(tmp_path):
    """tools/make_student.py needs nbformat only: it runs even where torch (and so molli_utils) cannot be imported."""
    out = tmp_path / "student"
    code = (
        "import runpy, sys; sys.modules['torch'] = None; "
        f"sys.argv = ['make_student.py', {str(ROOT / 'book' / 'assignments')!r}, {str(out)!r}]; "
        f"runpy.run_path({str(ROOT / 'tools' / 'make_student.py')!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in ASSIGNMENTS]
    bad = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_student.py"), str(tmp_path / "nothing"), str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "is not a folder" in bad.stderr and "Traceback" not in bad.stderr
