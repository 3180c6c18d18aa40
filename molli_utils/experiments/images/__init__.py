"""The image models of Table 1 (paper Sec. 4.2): five VAEs and two flows, vanilla, Gaussian or blurring
mollification, the schedule ablation of Table 2, and Table 1 in miniature on scikit-learn's digits.

One run (:class:`ImageRun`) builds a model of one of two families and trains it with the data
mollified during the first part of training (the paper: the first half), then clean:

* **VAEs** (``vae``, ``beta_vae``, ``iwae``, ``vae_iaf``, ``hvae``;
  :func:`~molli_utils.models.vae.make_vae`) through pythae and
  :class:`~molli_utils.training.vae.MollifiedTrainer`;
* **flows** (``realnvp``, ``glow``; :func:`~molli_utils.models.image_flows.make_image_flow`, normflows)
  through the book's one training loop (:func:`molli_utils.training.train`), with uniform
  dequantisation and the one line applied per batch by
  :class:`~molli_utils.training.batch.FlowBatches`, non-finite steps skipped and counted,
  optional gradient clipping, checkpoints, and DistributedDataParallel under ``torchrun``
  (:mod:`molli_utils.training.distributed`).

A run records the training loss per epoch, the time per step, and at chosen epochs 16 samples
(paper Fig. 8) and a score of ``n_snapshot`` samples (Fig. 7); the final score uses ``n_score``
samples, and flows also report test bits per dimension.

Scores (:class:`Scorer`): on CIFAR-10 / CelebA, FID with pytorch-fid's Inception-v3 where its weights
load and a GPU runs it, else a Fréchet distance on a fixed random conv net's features, named
``FD-random-features`` and never called FID. On the digits, the Fréchet distance and KID on the
features of the digits classifier shipped with the package (``FD-digits-classifier``,
:func:`~molli_utils.fid.digits_classifier`). Generated images are rounded to the data's grey
levels before scoring, as the official code's PNG files are.

Settings. :class:`ImageRun`'s defaults are the paper's for each model family on CIFAR-10
(Appendix D.3.2), with GLOW as the paper's **official code** trains it (``variant="code"``: Adamax
1e-3 with weight decay 1e-5, 50,000 iterations of which 30,000 mollified); ``variant="text"`` is
the paper's text (Adamax 3e-4, 80 epochs of which 50 mollified). :data:`DIFFERENCES` lists every
difference between the two and what the book does.

Command line: ``python -m molli_utils.experiments images --dataset cifar10`` (a GPU with network
access) and ``python -m molli_utils.experiments images --dataset digits --workers 2`` (the
miniature, on a CPU: writes ``images_digits.csv``).

Modules: :mod:`~molli_utils.experiments.images.config` (the run, its settings and profiles, the grid),
:mod:`~molli_utils.experiments.images.scoring` (samples and scores), :mod:`~molli_utils.experiments.images.flows`
and :mod:`~molli_utils.experiments.images.vaes` (training each family), :mod:`~molli_utils.experiments.images.runs`
(one run, its row, many runs), :mod:`~molli_utils.experiments.images.analysis` (the miniature's tables); every
public name is also here (``images.ImageRun``, ``images.run``, ...).
"""

from .analysis import ablation_table, at_variance, miniature_runs, miniature_table, miniature_variance, paired
from .config import (
    ABLATION,
    BUDGETS,
    DATASETS,
    DEQUANTIZE_SEED_OFFSET,
    DIFFERENCES,
    FLOWS,
    IDENTITY,
    MODEL_BUDGETS,
    MODELS,
    MODES,
    PAPER_TAU,
    RESULTS,
    RESULTS_DIGITS,
    SCHEDULES,
    SEEDS,
    SEEDS_DIGITS,
    VAES,
    VARIANTS,
    ImageRun,
    family,
    from_profile,
    grid,
    held_out_data,
    key,
    load_data,
    paper_defaults,
    profile_of,
    results_file,
    resume_dir,
    schedule_label,
    variance_cell,
)
from .result import ImageResult
from .runs import result_row, run, run_many
from .scoring import Scorer, make_scorer, mean_image_fd, sample

__all__ = [
    "mean_image_fd",
    "MODES",
    "MODELS",
    "FLOWS",
    "VAES",
    "DATASETS",
    "SCHEDULES",
    "VARIANTS",
    "RESULTS",
    "RESULTS_DIGITS",
    "DIFFERENCES",
    "ImageRun",
    "ImageResult",
    "Scorer",
    "family",
    "paper_defaults",
    "schedule_label",
    "results_file",
    "make_scorer",
    "load_data",
    "grid",
    "run",
    "run_many",
    "sample",
    "key",
    "resume_dir",
    "result_row",
    "miniature_runs",
    "miniature_table",
    "ablation_table",
    "paired",
    "miniature_variance",
    "at_variance",
    "SEEDS",
    "SEEDS_DIGITS",
    "BUDGETS",
    "MODEL_BUDGETS",
    "ABLATION",
    "IDENTITY",
    "from_profile",
    "profile_of",
    "PAPER_TAU",
    "DEQUANTIZE_SEED_OFFSET",
    "held_out_data",
    "variance_cell",
]
