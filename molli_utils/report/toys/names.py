"""Chapter 3's names and constants, shared by its figures (:mod:`.live`), tables (:mod:`.stored`) and findings."""

from __future__ import annotations

__all__ = ["SHORT", "TITLES", "MODE_ORDER", "LIM", "FLOOR", "COLLAPSE_TOL", "PAIR", "short"]

#: Data-set names short enough for the page.
SHORT = {"mixture_of_gaussians": "mixture", "von_mises": "circle"}
#: Data-set names as figure titles.
TITLES = {"mixture_of_gaussians": "mixture of Gaussians", "von_mises": "von Mises on the circle"}
#: The modes of the stored study, in the order the chapter shows them.
MODE_ORDER = ["vanilla", "mollification", "constant", "half", "clean-half"]
#: The plotting window is ``[-LIM, LIM]^2``.
LIM = 4.0
#: The unbiased MMD² estimate can dip below 0 near a perfect fit: values below are drawn at FLOOR.
FLOOR = 1e-5
#: A mixture run has collapsed when its test log-likelihood is within this of the single Gaussian's (nats).
COLLAPSE_TOL = 0.01
#: The paper's comparison: the two modes of every paired figure and table.
PAIR = ("vanilla", "mollification")


def short(frame):
    """``frame`` with short data-set names (:data:`SHORT`) in its ``dataset`` column and index."""
    return frame.replace({"dataset": SHORT}).rename(index=SHORT)
