"""The grader's side of a check: the check runs in the grader's process, and the student's functions it calls run
in the submission's kernel, reached through :class:`Remote` proxies that exchange data only.

A recorded call (:mod:`molli_utils.grade_kernel`) holds the check's arguments as data; :func:`decode` rebuilds
them (callables become :class:`Remote` proxies), :func:`run_check` runs the check's own code (not its recording
wrapper) from the grader's :mod:`molli_utils.checks` and returns its verdict. Whatever the kernel sends is read
with ``torch.load(weights_only=True)`` after a size limit (:data:`MAX_BYTES`): the student's code never runs in
this process, so it can neither patch the check, nor its reference implementation, nor read anything here.
"""

from __future__ import annotations

import base64
import inspect
import io
from typing import Any, Callable

import torch

from . import checks as _checks
from . import grade_kernel
from .checks import CHECKS
from .grade_cells import notebook_modules, outputs_of

__all__ = ["MAX_BYTES", "CallError", "StudentError", "Remote", "load_payload", "decode", "answer", "run_check"]

#: The largest payload (decoded bytes) accepted from a kernel: a recorded call, or one function's answer.
MAX_BYTES = 64 * 2**20


class CallError(RuntimeError):
    """The kernel did not answer a call (it died, timed out, or sent something unreadable)."""


class StudentError(RuntimeError):
    """The student's function raised ``type``: ``message`` in the kernel."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def load_payload(text: Any) -> Any:
    """The object in ``text`` (base64 of :func:`torch.save`), read with ``weights_only=True``; CallError if it is
    not text, too large (over :data:`MAX_BYTES`), or not such data."""
    if not isinstance(text, str) or len(text) > MAX_BYTES * 4 // 3 + 8:
        raise CallError("the kernel's answer is not text of at most 64 MiB")
    try:
        data = base64.b64decode(text, validate=True)
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the kernel sent that cannot be read is refused the same way
        raise CallError(f"the kernel's answer is not data the grader reads ({type(err).__name__})") from None


def _opaque(type_name: str, text: str) -> Any:
    """An object standing for a value the grader cannot rebuild: of a class named ``type_name``."""
    name = type_name if isinstance(type_name, str) and type_name.isidentifier() else "object"
    return type(name, (), {"__repr__": lambda self: str(text)[:200]})()


def decode(value: Any, call: Callable[[int, tuple, dict], Any]) -> Any:
    """``value`` in the form :func:`molli_utils.grade_kernel.encode` gives, rebuilt: dicts, NumPy arrays and
    scalars, pandas tables as dicts of lists, callables as :class:`Remote` proxies that answer through ``call``."""
    if isinstance(value, list):
        return [decode(v, call) for v in value]
    if isinstance(value, tuple):
        return tuple(decode(v, call) for v in value)
    if not isinstance(value, dict):
        return value
    if "__dict__" in value and isinstance(value["__dict__"], list):
        out = {}
        for pair in value["__dict__"]:
            if isinstance(pair, list) and len(pair) == 2:
                key = decode(pair[0], call)
                try:
                    out[key] = decode(pair[1], call)
                except TypeError:  # an unhashable key
                    out[repr(key)] = decode(pair[1], call)
        return out
    if isinstance(value.get("__ndarray__"), torch.Tensor):
        array = value["__ndarray__"].numpy()
        return array[()] if value.get("scalar") else array
    if "__dataframe__" in value and isinstance(value["__dataframe__"], list):
        return {decode(c, call): decode(v, call) for c, v in value["__dataframe__"] if isinstance(c, (str, int, float))}
    if isinstance(value.get("__callable__"), int):
        return Remote(value["__callable__"], call)
    if "__opaque__" in value:
        return _opaque(value.get("__opaque__"), value.get("repr", ""))
    return {k: decode(v, call) for k, v in value.items()}


class Remote:
    """A student's function living in the kernel: calling it sends the arguments and the grader's CPU random
    state, and returns the answer as data (its exceptions re-raised: ``NotImplementedError`` as is, others as
    :class:`StudentError`)."""

    def __init__(self, handle: int, call: Callable[[int, tuple, dict], Any]) -> None:
        self.handle, self._call = handle, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self.handle, args, kwargs)

    def __repr__(self) -> str:
        return f"<the student's function #{self.handle}>"


def answer(reply: Any, call: Callable[[int, tuple, dict], Any]) -> Any:
    """The result in ``reply`` (a :func:`load_payload` of the kernel's answer), the grader's CPU random state set
    to the kernel's after the call; its error re-raised."""
    if not isinstance(reply, dict):
        raise CallError("the kernel's answer is not a record")
    rng = reply.get("rng")
    if isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape:
        torch.set_rng_state(rng)
    error = reply.get("error")
    if isinstance(error, dict):
        kind, message = str(error.get("type", "Exception")), str(error.get("message", ""))
        if kind == "NotImplementedError":
            raise NotImplementedError(message)
        raise StudentError(kind, message)
    if "result" not in reply:
        raise CallError("the kernel's answer holds no result")
    return decode(reply["result"], call)


def run_check(name: str, args: Any, kwargs: Any) -> tuple[str, str]:
    """Run check ``name`` of the grader's :mod:`molli_utils.checks` on decoded ``args`` and ``kwargs``; its
    ``(status, message)``: ``passed``, ``failed`` (the check's AssertionError, the student's error, a call the
    kernel did not answer, anything else the check could not handle) or ``not attempted``
    (``NotImplementedError``)."""
    if name not in _checks.CHECKS:
        return "failed", f"{name} is not a check of molli_utils.checks"
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        return "failed", "could not be verified: the recorded call is not a list of arguments"
    check = getattr(_checks, name).__wrapped__
    try:
        return "passed", str(check(*args, **kwargs))
    except NotImplementedError as err:
        return "not attempted", f"NotImplementedError: {err}"
    except AssertionError as err:
        return "failed", str(err)
    except StudentError as err:
        return "failed", f"the code under test raised {err}"
    except CallError as err:
        return "failed", f"could not be verified: {err}"
    except Exception as err:  # noqa: BLE001 - what the student's code returned broke the check
        return "failed", f"the check could not use what the code returned: {type(err).__name__}: {err}"


# --------------------------------------------------------------------------- the grader's cells


def agent_cell() -> str:
    """The source of the grader's first cell: :mod:`molli_utils.grade_kernel`, sent as text (never imported in the
    kernel from the package) and bound to ``_molli_grade``."""
    source = inspect.getsource(grade_kernel)
    return (
        "# Added by the grading command (python -m molli_utils.grade): its agent in this kernel. The checks run in\n"
        "# the grader's own process; only data passes between them.\n"
        "import types as _molli_types\n"
        "_molli_grade = _molli_types.ModuleType('_molli_grade')\n"
        f"exec(compile({source!r}, '<molli_utils.grade_kernel>', 'exec'), _molli_grade.__dict__)\n"
        "_molli_grade = _molli_grade.Agent()\n"
        "del _molli_types\n"
    )


def rerun_cell(cell: int, source: str) -> str:
    """The source of the grader's cell that re-runs ``source`` (cell ``cell``) with the checks' calls recorded."""
    return (
        f"# Added by the grading command: re-runs cell {cell} of the submission, recording its checks' calls.\n"
        f"_molli_grade.rerun({cell}, {source!r}, {list(CHECKS)!r})\n"
    )


def done_records(nb: Any, first_cell: int) -> dict[int, dict[str, Any]]:
    """The last :data:`~molli_utils.grade_kernel.DONE_MIME` record of each re-run cell, by the submission's cell
    it re-ran: ``{"ename", "evalue", "calls": [{"check", "payload"}]}`` (malformed records are skipped)."""
    out = {}
    for cell in nb.cells[first_cell:]:
        meta = cell.get("metadata", {}).get("molli_grader", {})
        if "cell" not in meta:
            continue
        for rec in outputs_of(cell, grade_kernel.DONE_MIME):
            if isinstance(rec, dict) and rec.get("cell") == meta["cell"] and isinstance(rec.get("calls"), list):
                out[meta["cell"]] = {
                    "ename": str(rec.get("ename", "")),
                    "evalue": str(rec.get("evalue", "")),
                    "calls": [c for c in rec["calls"] if isinstance(c, dict)],
                }
    return out


def run_checks(done: dict[int, dict[str, Any]], nb: Any, run: Any, timeout: int, recs: list[dict[str, Any]]) -> str:
    """Run every recorded call of a check (``done``, :func:`done_records`) in this process, the student's
    functions called in the kernel through cells appended to ``nb`` and executed by ``run(index)``; append the
    verdicts ``{"check", "status", "message", "cell"}`` to ``recs``. A call whose record cannot be read fails.
    Returns why the kernel stopped answering (it died), else ``""``."""
    nbformat, _ = notebook_modules()
    from nbclient.exceptions import DeadKernelError

    dead = [""]

    def call(handle: int, args: tuple, kwargs: dict) -> Any:
        if dead[0]:
            raise CallError(dead[0])
        buf = io.BytesIO()
        torch.save({"args": args, "kwargs": kwargs, "rng": torch.get_rng_state()}, buf)
        payload = base64.b64encode(buf.getvalue()).decode("ascii")
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"_molli_grade.call({int(handle)}, {payload!r})", metadata={"molli_grader": {"call": int(handle)}}
            )
        )
        index = len(nb.cells) - 1
        try:
            late = run(index)
        except DeadKernelError as err:
            dead[0] = f"the kernel died while the checks called the student's code ({err})"
            raise CallError(dead[0]) from None
        cell = nb.cells[index]
        answers = outputs_of(cell, grade_kernel.RESULT_MIME)
        cell.source = f"_molli_grade.call({int(handle)}, ...)  # {len(payload)} characters of arguments"
        for o in cell.outputs:  # keep the executed copy small: the answers are read, not stored
            if grade_kernel.RESULT_MIME in o.get("data", {}):
                o["data"][grade_kernel.RESULT_MIME] = f"{len(str(o['data'][grade_kernel.RESULT_MIME]))} characters"
        if late:
            raise CallError(f"the call ran longer than {timeout} s")
        if not answers:
            raise CallError("the kernel gave no answer to a call of the student's function")
        return answer(load_payload(answers[-1]), call)

    for cell in sorted(done):
        for entry in done[cell]["calls"]:
            name = entry.get("check")
            if name not in CHECKS:
                continue
            try:
                request = load_payload(entry.get("payload"))
                if not isinstance(request, dict):
                    raise CallError("the recorded call is not a record")
                args = decode(request.get("args"), call)
                kwargs = decode(request.get("kwargs"), call)
            except CallError as err:
                status, message = "failed", f"could not be verified: {err}"
            else:
                status, message = run_check(name, args, kwargs)
            recs.append({"check": name, "status": status, "message": message, "cell": cell})
    return dead[0]
