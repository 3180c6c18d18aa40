"""Run a command (the grader's kernel) with resource limits, and kill everything it started when it ends.

    python -I molli_utils/sandbox.py [--wall S] [--cpu S] [--memory MIB] [--nproc N] [--fsize MIB] -- COMMAND ...

Used by :mod:`molli_utils.grade` as the prefix of each submission's kernel command. The contract:

* the supervisor (this process) starts a new session (it is then the leader of its own process group),
  marks itself a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``: every orphaned descendant, e.g. a
  process the student's code detached with a double fork or ``setsid``, is re-parented to it instead of
  to init), and runs ``COMMAND`` as its child under the limits;
* limits of the child (inherited by all it starts): ``RLIMIT_CPU`` (``--cpu`` seconds of CPU time),
  ``RLIMIT_AS`` (``--memory`` MiB of address space), ``RLIMIT_NPROC`` (``--nproc`` more processes than
  the user runs now; not enforced for root), ``RLIMIT_FSIZE`` (``--fsize`` MiB per written file) and no
  core dumps;
* ``--wall`` seconds after the start the child is killed (``SIGKILL``);
* when the child exits (or is killed), every remaining descendant is killed with ``SIGKILL`` and reaped,
  then the supervisor exits with the child's status (``128 + signal`` if it was killed by one);
* ``SIGTERM`` and ``SIGHUP`` to the supervisor are passed on to the child; ``SIGINT`` is ignored (the
  kernel is interrupted by a message, not a signal).

The file uses the standard library only, so that it can run with ``python -I`` (no environment, no site
packages) from the grader's own copy. Linux only (``/proc``, ``prctl``); elsewhere the limits still apply,
but leftover processes are killed only through the process group.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import sys
import time
from typing import Optional, Sequence

PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper() -> bool:
    """Make this process the subreaper of its descendants (Linux); False where that is not possible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _user_processes() -> int:
    """How many processes (tasks) this user runs now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count


def _limit(which: int, value: int) -> None:
    """Lower the soft and hard limit ``which`` to ``value`` (never raise one above the current hard limit)."""
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def apply_limits(*, cpu: int, memory_mib: int, nproc: int, fsize_mib: int) -> None:
    """Set the limits of the calling process (see the module docstring); 0 leaves a limit unchanged."""
    if cpu:
        _limit(resource.RLIMIT_CPU, cpu)
    if memory_mib:
        _limit(resource.RLIMIT_AS, memory_mib * 1024 * 1024)
    if nproc and os.getuid() != 0:
        _limit(resource.RLIMIT_NPROC, _user_processes() + nproc)
    if fsize_mib:
        _limit(resource.RLIMIT_FSIZE, fsize_mib * 1024 * 1024)
    _limit(resource.RLIMIT_CORE, 0)


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(name))
    return found


def kill_descendants(pid: Optional[int] = None, *, rounds: int = 50) -> int:
    """SIGKILL every descendant of ``pid`` (default: this process), reaping them; return how many were killed."""
    pid = os.getpid() if pid is None else pid
    killed = 0
    for _ in range(rounds):
        stack, seen = [pid], []
        while stack:
            for child in _children(stack.pop()):
                seen.append(child)
                stack.append(child)
        if not seen:
            break
        for child in seen:
            try:
                os.kill(child, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        _reap()
        time.sleep(0.02)
    return killed


def _reap() -> None:
    """Collect every child that has exited (orphans re-parented here included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def supervise(command: Sequence[str], *, wall: float, cpu: int, memory_mib: int, nproc: int, fsize_mib: int) -> int:
    """Run ``command`` as described in the module docstring; return its exit status."""
    try:
        os.setsid()
    except OSError:  # already a session leader (the kernel manager starts it in a new session)
        pass
    _set_subreaper()
    child = os.fork()
    if child == 0:  # pragma: no cover - replaced by exec
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            apply_limits(cpu=cpu, memory_mib=memory_mib, nproc=nproc, fsize_mib=fsize_mib)
            os.execvp(command[0], list(command))
        except BaseException as err:  # noqa: BLE001 - report, then leave without running the parent's cleanup
            sys.stderr.write(f"molli sandbox: could not start {command[0]}: {err}\n")
        os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: _forward(child, signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deadline = time.monotonic() + wall if wall else None
    status: Optional[int] = None
    while status is None:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            status = 0
            break
        if pid == child:
            status = os.waitstatus_to_exitcode(raw)
            status = 128 - status if status < 0 else status
            break
        if pid == 0:
            if deadline is not None and time.monotonic() > deadline:
                sys.stderr.write(f"molli sandbox: wall-time limit of {wall:g} s reached: killed\n")
                _forward(child, signal.SIGKILL)
                deadline = None
            time.sleep(0.05)
    kill_descendants()
    return status


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="sandbox.py", description=__doc__.split("\n")[0])
    parser.add_argument("--wall", type=float, default=0.0, help="seconds before the command is killed (0: none)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU seconds (RLIMIT_CPU; 0: unchanged)")
    parser.add_argument("--memory", type=int, default=0, help="MiB of address space (RLIMIT_AS; 0: unchanged)")
    parser.add_argument("--nproc", type=int, default=0, help="more processes allowed (RLIMIT_NPROC; 0: unchanged)")
    parser.add_argument("--fsize", type=int, default=0, help="MiB per written file (RLIMIT_FSIZE; 0: unchanged)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return supervise(
        command, wall=args.wall, cpu=args.cpu, memory_mib=args.memory, nproc=args.nproc, fsize_mib=args.fsize
    )


if __name__ == "__main__":
    sys.exit(main())
