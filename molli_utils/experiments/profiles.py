"""Profiles: how big a run is, chosen once per session.

* ``quick``: CI and laptops, minutes per chapter on a CPU (fewer steps, same pictures);
* ``colab``: what one free Colab session (a T4 GPU, a few hours) finishes, every chapter in
  about an hour at most;
* ``full``: the paper's settings (Appendix D), the ones behind the stored results.

An experiment's budget table maps each profile to the run fields it changes from the paper's
defaults (``toy2d.BUDGETS``, ``uci.BUDGETS``, ...); :func:`budget_of` reads one and
:func:`matching_profile` finds the profile a run was built with. :func:`profile` resolves the
profile to run (argument, else ``$MOLLI_PROFILE``), :func:`runnable_profile` falls back to
``quick`` where a profile needs a GPU, and :data:`CHAPTERS` / :func:`chapter` hold the sizes of
the chapters' own demonstrations; :func:`costs` says what a chapter costs in each profile.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from ..runtime import PROFILES, get_profile
from . import results

__all__ = [
    "PROFILES",
    "GPU_PROFILES",
    "CHAPTERS",
    "profile",
    "budget_of",
    "matching_profile",
    "runnable_profile",
    "chapter",
    "costs",
]

#: The profiles of an experiment that need a CUDA GPU (15 image VAEs: weeks on a CPU).
GPU_PROFILES = {"images": ("colab", "full")}

#: Per chapter and profile, the sizes of the chapter's own demonstrations (what is not an experiment of the paper).
CHAPTERS: dict[str, dict[str, dict[str, Any]]] = {
    "the_one_line": {
        "full": {"toy_steps": 2_000},
        "colab": {"toy_steps": 2_000},
        "quick": {"toy_steps": 1_000},
    },
    "why_likelihood_struggles": {
        "full": {
            "n_grid": 4_096,
            "bandwidth_min": 0.004,
            "n_bandwidths": 25,
            "n_model_samples": 4_000,
            "flow_steps": 20_000,
        },
        "colab": {
            "n_grid": 4_096,
            "bandwidth_min": 0.004,
            "n_bandwidths": 25,
            "n_model_samples": 4_000,
            "flow_steps": 20_000,
        },
        "quick": {
            "n_grid": 2_048,
            "bandwidth_min": 0.01,
            "n_bandwidths": 13,
            "n_model_samples": 1_000,
            "flow_steps": 3_000,
        },
    },
    "assignment1": {
        "full": {"steps": 3_000, "seeds": (0, 1, 2)},
        "colab": {"steps": 3_000, "seeds": (0, 1, 2)},
        "quick": {"steps": 300, "seeds": (0, 1)},
    },
}


def profile(name: Optional[str] = None) -> str:
    """The profile to run: ``name`` if given, else ``$MOLLI_PROFILE``, else ``colab`` on Colab and ``full`` elsewhere.

    An explicit ``name`` wins over the environment (``settings.uci("full", ...)`` is always the paper's);
    a ``name`` not in :data:`PROFILES` raises ``ValueError``.
    """
    if name is None:
        return get_profile()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILES)}")
    return name


def budget_of(table: Mapping[str, Mapping[str, Any]], profile_name: Optional[str] = None) -> dict[str, Any]:
    """A copy of ``table[profile(profile_name)]``: the run fields that the profile changes in an experiment's budget
    ``table`` (``{"full": {...}, "colab": {...}, "quick": {...}}``)."""
    return dict(table[profile(profile_name)])


def matching_profile(config: Any, build: Callable[..., Any], identity: Sequence[str]) -> str:
    """The first of ``"full"``, ``"colab"``, ``"quick"`` for which ``build(name, **identity fields of config)``
    equals ``config``, else ``"custom"`` (``identity``: the fields that name a run, not its budget)."""
    names = {k: getattr(config, k) for k in identity}
    for name in ("full", "colab", "quick"):
        if build(name, **names) == config:
            return name
    return "custom"


def runnable_profile(
    experiment: str, profile_name: Optional[str] = None, device: Union[str, torch.device] = "cpu", log: Any = print
) -> str:
    """``profile_name`` (default: :func:`profile`) if ``device`` can run it, else ``"quick"``, with a ``log`` line
    saying why (:data:`GPU_PROFILES`: the profiles that need a CUDA GPU)."""
    name = profile(profile_name)
    if name in GPU_PROFILES.get(experiment, ()) and torch.device(device).type != "cuda":
        log(
            f"The {name} profile of the {experiment} experiment needs a CUDA GPU (Colab: Runtime > Change runtime "
            f"type > GPU); on {torch.device(device).type} the quick profile runs instead."
        )
        return "quick"
    return name


def chapter(name: str, profile_name: Optional[str] = None) -> dict[str, Any]:
    """The sizes of chapter ``name``'s own demonstrations in ``profile_name`` (default: :func:`profile`);
    ``ValueError`` for a chapter without settings in :data:`CHAPTERS`."""
    if name not in CHAPTERS:
        raise ValueError(f"no settings for chapter {name!r}; the chapters with settings are {list(CHAPTERS)}")
    return dict(CHAPTERS[name][profile(profile_name)])


def costs(chapter_name: str) -> str:
    """What chapter ``chapter_name`` (e.g. ``"03_toys"``) costs in each profile, and how to switch, as one paragraph.

    Read from the stored chapter times (``chapter_times.csv``: measured by executing the chapter on a
    2-core CPU, and for the GPU chapter the T4 time estimated from FLOP counts); profiles not
    measured yet are said to be so. ``python -m tools.chapter_times`` produces the table.
    """
    rows = results.load("chapter_times.csv")
    rows = rows[rows["chapter"] == chapter_name]

    def minutes(profile: str, kind: str) -> str:
        hit = rows[(rows["profile"] == profile) & (rows["kind"] == kind)]
        if hit.empty:
            return "not measured yet"
        s = float(hit["seconds"].iloc[0])
        return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    cpu = ", ".join(f"{p} {minutes(p, 'measured, this CPU')}" for p in ("quick", "colab", "full"))
    t4 = rows[rows["kind"] == "estimate, T4"]
    gpu = (
        f"; on a Colab T4 the colab profile takes about {minutes('colab', 'estimate, T4')} (estimated from FLOP counts)"
        if not t4.empty
        else ""
    )
    return (
        f"This chapter takes, on a 2-core CPU: {cpu}{gpu}. The profile comes from the environment variable "
        "MOLLI_PROFILE (quick, colab or full; on Colab the default is colab): set it before running the "
        "chapter, e.g. `%env MOLLI_PROFILE=quick` in a cell above this one."
    )
