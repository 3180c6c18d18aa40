"""molli_utils: data mollification for likelihood-based generative models.

The package behind the tutorial book on annealed data mollification
(Tran et al., NeurIPS 2023). Modules are named for the concept they hold:

- :mod:`molli_utils.schedules`  noise schedules gamma(t/T) and the blur schedule
- :mod:`molli_utils.mollifiers` Gaussian and blurring mollification, :class:`Mollifier`
- :mod:`molli_utils.metrics`    MMD^2
- :mod:`molli_utils.runtime`    device, run profile, Colab detection
- :mod:`molli_utils.training`   the training loop shared by every chapter (checkpoint/resume)
- :mod:`molli_utils.data`       data sets (the paper's 2D toys)
- :mod:`molli_utils.models`     models built from normflows, and a vectorised flow ensemble
- :mod:`molli_utils.indm`       diffusion in a flow's latent space (INDM), for comparison
"""

__version__ = "0.1.0"

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
