"""The book's experiments: one home for their settings, runs and results.

* :mod:`~molli_utils.experiments.settings` -- every profile (``quick``, ``colab``, ``full``) of every
  experiment, and the one map from a training mode to a mollifier: the chapters' one entry point, gathering
  :mod:`~molli_utils.experiments.profiles` (profiles and the chapters' own sizes),
  :mod:`~molli_utils.experiments.modes` (mode -> mollifier) and each experiment's budgets;
* :mod:`~molli_utils.experiments.results` -- where results live (shipped with the package; commands
  write to ``./results`` or ``--results DIR``), their columns, the recorded-run keys, provenance;
* one module per experiment, each with a frozen dataclass describing one run (the paper's settings
  as defaults), its ``BUDGETS`` per profile, ``from_profile(profile, **fields)``, ``run(config, callback=None)``
  and ``grid(profile, ...)``:
  :mod:`~molli_utils.experiments.toy2d` (Sec. 4.1), :mod:`~molli_utils.experiments.indm` (INDM on the
  toys), :mod:`~molli_utils.experiments.uci` (Table 4), :mod:`~molli_utils.experiments.images` (Table 1).

A chapter's live run calls the same ``run`` that wrote the stored results. The command line
(:mod:`~molli_utils.experiments.cli`: the parser and :func:`main`; :mod:`~molli_utils.experiments.commands`:
each subcommand's driver; :mod:`~molli_utils.experiments.runner`: the batch of runs they share)::

    python -m molli_utils.experiments toy2d                        # 2 toys x 3 modes x 3 seeds, 20k steps
    python -m molli_utils.experiments toy2d --modes half           # the first-half schedule too
    python -m molli_utils.experiments toy2d --activation leaky_relu   # LeakyReLU(0.01) conditioners
    python -m molli_utils.experiments toy2d --noise-floor 20       # MMD^2 of the truth itself, 20 times
    python -m molli_utils.experiments indm                         # INDM and plain diffusion, 12 runs
    python -m molli_utils.experiments uci --all                    # Table 4 (official flows): 72 runs on all cores
    python -m molli_utils.experiments uci --all --variants paper-text   # the flows of the paper's text
    python -m molli_utils.experiments uci --all --modes constant   # the constant-noise baseline, 36 runs
    python -m molli_utils.experiments uci --dataset redwine --flow maf --mode mollification --seed 1
    python -m molli_utils.experiments images --dataset cifar10     # Table 1 (a GPU, the network)
    python -m molli_utils.experiments images --dataset digits --workers 2            # Table 1 in miniature (CPU)
    python -m molli_utils.experiments images --dataset digits --ablation --workers 2 # Table 2 in miniature
    python -m molli_utils.experiments images --dataset digits --modes vanilla --decoder-variance 1
                                 # the digits' VAEs with the paper's unit-variance likelihood (chapter 6)

Every command appends one row per finished run to ``--results DIR`` (default ``$MOLLI_RESULTS``, else
``./results``) and skips the runs already there, so an interrupted table resumes. ``--profile quick``
runs the CI-sized version of any of them. The book's stored results are updated from a checkout
with ``--results molli_utils/results``.

Errors come first and short (:mod:`~molli_utils.experiments.safeguards`): every value, the results folder (created,
writable, its files intact and with their columns) and, for ``uci``, the data sets are checked before any
training; a bad one is a one-line error with exit code 2 (``--debug`` shows the traceback). Repeated values
(``--seeds 1 1``) run once. A run that fails is reported with its key while the others go on and are stored
(exit code 1). Ctrl-C or SIGTERM terminates the workers and exits with code 130, every finished run stored.
The toy ensembles also resume mid-run: each checkpoints into ``--checkpoints DIR`` (default
``./checkpoints/toy2d``; ``none``: off) at every validation step, and the same command again resumes it to
bitwise the rows of an uninterrupted run (the images command resumes its runs from ``./checkpoints/images``).
"""

from __future__ import annotations

from . import cli, images, indm, results, settings, toy2d, uci  # noqa: F401 (the submodules, attributes of the package)
from .cli import EXPERIMENTS, main

__all__ = ["EXPERIMENTS", "main"]
