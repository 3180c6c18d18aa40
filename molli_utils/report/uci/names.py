"""Chapter 4's names and constants, shared by its tables, figures and findings."""

from __future__ import annotations

from .. import NOISE, NOT_RUN, ONE_SEED, OPPOSITE, SIMILAR, SMALLER

__all__ = ["SHORT", "BRIEF", "RED_WINE_VARIABLES", "DATASETS", "VARIANTS", "FLOWS", "GRID", "MOL"]

#: The data sets as the page spells them.
SHORT = {"redwine": "red wine", "whitewine": "white wine", "parkinsons": "Parkinsons", "miniboone": "MiniBooNE"}
#: :func:`molli_utils.report.verdict`'s names, shortened for a table.
BRIEF = {
    SIMILAR: "similar",
    SMALLER: "smaller",
    NOISE: "noise",
    OPPOSITE: "opposite",
    ONE_SEED: "1 seed",
    NOT_RUN: "not run",
}
#: The eleven columns of the red-wine array, in order.
RED_WINE_VARIABLES = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free SO2",
    "total SO2",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)
DATASETS = ("redwine", "whitewine", "parkinsons")
VARIANTS = ("official", "paper-text")
FLOWS = ("maf", "realnvp", "glow")
#: Runs per variant in the stored table: data sets x flows x modes x seeds.
GRID = 3 * 3 * 3 * 4
MOL = "mollification - vanilla"
