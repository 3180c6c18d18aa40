"""molli_utils: data mollification for likelihood-based generative models.

The package behind the tutorial book on annealed data mollification
(Tran et al., NeurIPS 2023). Modules are named for the concept they hold:

- :mod:`molli_utils.schedules`   noise schedules gamma(t/T) and the blur schedule
- :mod:`molli_utils.mollifiers`  Gaussian and blurring mollification, :class:`Mollifier`
- :mod:`molli_utils.metrics`     MMD^2
- :mod:`molli_utils.fid`         FID in memory (pytorch-fid), and an offline stand-in
- :mod:`molli_utils.data`        data sets: the paper's 2D toys, UCI tables, images
- :mod:`molli_utils.models`      models by family: toy, ensemble, tabular, indm, vae
- :mod:`molli_utils.training`    the training loop (and pythae's trainer, mollified)
- :mod:`molli_utils.checkpoints` the one checkpoint format: atomic, integrity-checked
- :mod:`molli_utils.experiments` the paper's experiments: settings, runs, stored results
- :mod:`molli_utils.report`      verdicts of the reproduction report
- :mod:`molli_utils.runtime`     device, run profile, Colab detection
"""

from ._version import __version__
from .metrics import mmd2
from .mollifiers import Mollifier, blur, gaussian
from .runtime import get_profile, on_colab, pick_device
from .training import DivergenceError, TrainConfig, TrainResult, train
from .schedules import (
    blur_schedule,
    cosine_schedule,
    get_schedule,
    linear_schedule,
    log_snr,
    sigmoid_schedule,
)

__all__ = [
    "__version__",
    "DivergenceError",
    "Mollifier",
    "TrainConfig",
    "TrainResult",
    "blur",
    "blur_schedule",
    "cosine_schedule",
    "gaussian",
    "get_profile",
    "get_schedule",
    "linear_schedule",
    "log_snr",
    "mmd2",
    "on_colab",
    "pick_device",
    "sigmoid_schedule",
    "train",
]
