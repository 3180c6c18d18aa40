"""What every graded check shares: the record of its verdict (what the grading command reads) and the helpers
that compare a student's result with the reference and say what is wrong (:mod:`molli_utils.checks`)."""

from __future__ import annotations

import functools
import inspect
import textwrap
from typing import Any, Callable, Optional

import numpy as np
import torch

__all__ = ["RECORD_MIME", "STATUSES", "record", "graded", "show_value", "call_text", "as_tensor", "fmt", "assert_close"]

#: MIME type of the display output that carries a check's verdict (read by :mod:`molli_utils.grade`).
RECORD_MIME = "application/vnd.molli-check+json"
#: The verdicts a record can hold.
STATUSES = ("passed", "failed", "not attempted")


# --------------------------------------------------------------------------- records


def record(check: str, status: str, message: str) -> dict[str, str]:
    """Emit the verdict of ``check`` and return it as ``{"check", "status", "message"}``.

    Inside IPython it is displayed as a MIME bundle (:data:`RECORD_MIME` plus a ``text/plain``
    line); elsewhere only a passed verdict is printed (a failure is the exception itself).
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; choose one of {list(STATUSES)}")
    entry = {"check": check, "status": status, "message": message}
    text = f"passed: {message}" if status == "passed" else f"{check}: {status} (see the error below)"
    # wrapped to the book's text column (the rendered page shows text/plain)
    text = textwrap.fill(text, 78, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # IPython is not a dependency of the package
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({RECORD_MIME: entry, "text/plain": text}, raw=True)
    elif status == "passed":
        print(text)
    return entry


def graded(check: Callable[..., str]) -> Callable[..., None]:
    """Turn ``check`` (which returns its pass message or raises) into a graded check that records its verdict."""

    @functools.wraps(check)
    def graded(*args: Any, **kwargs: Any) -> None:
        name = check.__name__
        try:
            message = check(*args, **kwargs)
        except NotImplementedError as err:  # an unfinished exercise
            record(name, "not attempted", f"NotImplementedError: {err}")
            raise
        except AssertionError as err:  # the check's verdict
            record(name, "failed", str(err))
            raise
        except Exception as err:  # the student's code crashed
            record(name, "failed", f"the code under test raised {type(err).__name__}: {err}")
            raise
        record(name, "passed", message)

    graded.__annotations__ = {**check.__annotations__, "return": "None"}
    graded.__signature__ = inspect.signature(check).replace(return_annotation="None")
    return graded


# --------------------------------------------------------------------------- helpers


def format_values(values: Any) -> str:
    """A nested list of numbers as Python source, e.g. ``[[0.0, 1.5], [2.0, 3.0]]``."""
    if isinstance(values, list):
        return "[" + ", ".join(format_values(v) for v in values) + "]"
    return repr(float(values)) if isinstance(values, float) else repr(values)


def show_value(value: Any, limit: int = 12) -> str:
    """An input as the reader would type it: tensors by their values (up to ``limit``), dtype and shape."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype)
        if value.numel() <= limit:
            return f"torch.tensor({format_values(value.tolist())}, dtype={dtype})"
        head = ", ".join(f"{v:g}" for v in value.reshape(-1)[:6].tolist())
        return f"a {dtype} tensor of shape {list(value.shape)}: [{head}, ...]"
    return repr(value)


def call_text(name: str, args: tuple, kwargs: dict) -> str:
    """``name(arg, ..., key=value)`` with every argument shown by :func:`show_value`."""
    parts = [show_value(a) for a in args] + [f"{k}={show_value(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def as_tensor(value: Any, what: str, *, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``value`` (number, NumPy array or tensor) as a float64 CPU tensor, or a helpful AssertionError.

    With ``dtype``, a tensor or array of another dtype is refused with a hint (a float32 result
    looks right when printed but differs from a float64 reference in the 8th digit).
    """
    if dtype is not None and isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        got = value.dtype
        wanted = dtype if isinstance(value, torch.Tensor) else np.dtype(str(dtype).replace("torch.", ""))
        if got != wanted:
            hint = (
                " Compute in float64: create your tensors with dtype=torch.float64 (e.g. "
                "torch.as_tensor(t, dtype=torch.float64)); float32 keeps only about 7 digits, so its values can "
                "differ from the reference while the printed numbers look the same."
                if dtype == torch.float64
                else f" Keep the input's dtype ({dtype}): convert with .to(x.dtype)."
            )
            raise AssertionError(f"{what}: expected a {dtype} result, got {got}.{hint}")
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise AssertionError(
            f"{what}: must return a number or a tensor, got {type(value).__name__}: {value!r}"
        ) from err


def fmt(t: torch.Tensor, limit: int = 6) -> str:
    """The first ``limit`` values of ``t``, for messages."""
    flat = t.reshape(-1)
    shown = ", ".join(f"{v:.6g}" for v in flat[:limit].tolist())
    return f"[{shown}{', ...' if flat.numel() > limit else ''}]" if t.ndim else f"{t.item():.6g}"


def assert_close(got: torch.Tensor, expected: torch.Tensor, *, where: str, rtol: float, atol: float) -> None:
    """Raise an AssertionError saying where and by how much ``got`` differs from ``expected`` (shape, nan, values)."""
    if got.shape != expected.shape:
        raise AssertionError(
            f"{where}: wrong shape, expected {tuple(expected.shape)}, got {tuple(got.shape)}"
            " (return a result with the shape of the input)"
        )
    if not bool(torch.isfinite(got).all()):
        raise AssertionError(f"{where}: the result contains nan or inf: {fmt(got)}")
    if not torch.allclose(got, expected, rtol=rtol, atol=atol):
        err = (got - expected).abs()
        i = int(err.reshape(-1).argmax())
        raise AssertionError(
            f"{where}: wrong values. Largest error at flat index {i}: expected "
            f"{expected.reshape(-1)[i].item():.10g}, got {got.reshape(-1)[i].item():.10g} "
            f"(|error| = {err.reshape(-1)[i].item():.3g}).\n  expected {fmt(expected)}\n  got      {fmt(got)}"
        )
