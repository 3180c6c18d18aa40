"""The grader's agent inside a submission's kernel: it records the calls of the checks and calls the student's
functions on request, exchanging **data only** with the grader (:mod:`molli_utils.grade_calls`).

The grader sends this file's source to the kernel (it is never imported there from the package) and executes it
into a fresh namespace bound to ``_molli_grade``; then

* ``_molli_grade.rerun(cell, source, checks)`` executes the source of a cell that calls checks, with every
  ``check_*`` name (``checks.check_blur``, a ``from molli_utils.checks import check_blur``) bound to a recorder
  that keeps the call's arguments and returns ``None``; at the end it displays one output of MIME type
  :data:`DONE_MIME`: ``{"cell", "ename", "evalue", "calls": [{"check", "payload"}]}``, ``payload`` the
  base64 of :func:`torch.save` of ``{"args", "kwargs"}`` in the form :func:`encode` gives;
* ``_molli_grade.call(handle, payload)`` calls the callable kept under ``handle`` with the arguments in
  ``payload`` (the same form), the global CPU random state of the grader set first, and displays one output of
  MIME type :data:`RESULT_MIME`: the base64 of ``{"result"}`` or ``{"error": {"type", "message"}}``, with the
  random state after the call (``"rng"``).

Nothing the kernel sends back is trusted: the grader reads it with ``torch.load(weights_only=True)``, refuses it
past a size limit, and judges it with its own checks. Needs torch (numpy and pandas values are encoded when
those are installed).
"""

import base64
import io
import types

import torch

DONE_MIME = "application/vnd.molli-grade-done+json"
RESULT_MIME = "application/vnd.molli-grade-result+json"
MAX_DEPTH = 32


class Opaque(dict):
    """Marker: a value the grader cannot rebuild (``{"__opaque__": type name, "repr": ...}``)."""


def encode(value, handles, depth=0):
    """``value`` as data ``torch.load(weights_only=True)`` reads: tensors (detached, on the CPU), numbers,
    strings, ``None``, lists, tuples; dicts as ``{"__dict__": [[key, value], ...]}``; NumPy arrays and scalars as
    ``{"__ndarray__": tensor, "scalar": bool}``; pandas tables as ``{"__dataframe__": [[column, values], ...]}``;
    callables as ``{"__callable__": handle}`` (kept in ``handles``); anything else as ``{"__opaque__": type
    name, "repr": text}``."""
    if depth > MAX_DEPTH:
        return {"__opaque__": type(value).__name__, "repr": "nested too deeply"}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().as_subclass(torch.Tensor).clone()
    if isinstance(value, (list, tuple)):
        items = [encode(v, handles, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, handles, depth + 1), encode(v, handles, depth + 1)] for k, v in value.items()]}
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        import numpy as np

        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biufc":
            return {
                "__ndarray__": torch.from_numpy(np.array(value, copy=True).reshape(np.shape(value))),
                "scalar": isinstance(value, np.generic),
            }
    if module == "pandas":
        if hasattr(value, "columns") and hasattr(value, "to_dict"):
            return {
                "__dataframe__": [
                    [encode(c, handles, depth + 1), encode(value[c].tolist(), handles, depth + 1)]
                    for c in value.columns
                ]
            }
        if hasattr(value, "tolist"):
            return encode(value.tolist(), handles, depth + 1)
    for base in (int, float, str):  # a subclass (an enum member, a str subclass): its plain value
        if isinstance(value, base):
            return base(value)
    if callable(value):
        handles.append(value)
        return {"__callable__": len(handles) - 1}
    try:
        text = repr(value)[:200]
    except Exception:  # noqa: BLE001 - a repr that raises is still described
        text = "?"
    return {"__opaque__": type(value).__name__, "repr": text}


def _pack(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _show(mime, body, text):
    from IPython.display import display

    display({mime: body, "text/plain": text}, raw=True)


class Agent:
    """The kernel's side of the grading: the callables met in the checks' arguments, by handle."""

    def __init__(self):
        self.handles = []

    def rerun(self, cell, source, checks):
        """Execute ``source`` (cell ``cell``) with the checks named in ``checks`` recorded, not run; show the
        calls and how the cell ended (:data:`DONE_MIME`)."""
        import sys

        from IPython import get_ipython

        shell = get_ipython()
        calls = []

        def recorder(name):
            def record(*args, **kwargs):
                payload = _pack({"args": encode(args, self.handles), "kwargs": encode(kwargs, self.handles)})
                calls.append({"check": name, "payload": payload})

            record.__name__ = name
            return record

        fake = types.ModuleType("molli_utils.checks")
        for name in checks:
            setattr(fake, name, recorder(name))
        saved = {k: shell.user_ns[k] for k in ["checks", *checks] if k in shell.user_ns}
        saved_module = sys.modules.get("molli_utils.checks")
        shell.user_ns["checks"] = fake
        for name in checks:
            if name in shell.user_ns:
                shell.user_ns[name] = getattr(fake, name)
        sys.modules["molli_utils.checks"] = fake
        package = sys.modules.get("molli_utils")
        old_attr = getattr(package, "checks", None) if package is not None else None
        if package is not None:
            package.checks = fake
        ename = evalue = ""
        try:
            exec(compile(shell.transform_cell(source), f"<cell {cell}, re-run by the grader>", "exec"), shell.user_ns)
        except BaseException as err:  # noqa: BLE001 - how the cell ended is part of the record
            ename, evalue = type(err).__name__, str(err)[:2000]
        finally:
            shell.user_ns.update(saved)
            if saved_module is not None:
                sys.modules["molli_utils.checks"] = saved_module
            if package is not None and old_attr is not None:
                package.checks = old_attr
        _show(
            DONE_MIME,
            {"cell": cell, "ename": ename, "evalue": evalue, "calls": calls},
            f"grader: cell {cell} re-run, {len(calls)} check call(s) recorded",
        )

    def call(self, handle, payload):
        """Call the callable ``handle`` with the arguments in ``payload``; show the result (:data:`RESULT_MIME`)."""
        request = torch.load(io.BytesIO(base64.b64decode(payload)), weights_only=True)
        torch.set_rng_state(request["rng"])
        try:
            fn = self.handles[handle]
            result = {"result": encode(fn(*request["args"], **request["kwargs"]), self.handles)}
        except BaseException as err:  # noqa: BLE001 - the student's error is the answer
            result = {"error": {"type": type(err).__name__, "message": str(err)[:2000]}}
        result["rng"] = torch.get_rng_state()
        _show(RESULT_MIME, _pack(result), f"grader: call of handle {handle} answered")
