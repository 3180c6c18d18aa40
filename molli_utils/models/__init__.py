"""The book's models, grouped by family; built from normflows and pythae, never trained here.

* :mod:`molli_utils.models.toy`: the paper's 2D REAL-NVP (:func:`realnvp_2d`) and a
  ``torch.func``-friendly :func:`flow_log_prob` / :func:`flow_to_base` for any normflows model;
* :mod:`molli_utils.models.ensemble`: :class:`FlowEnsemble`, M flows evaluated and trained as one;
* :mod:`molli_utils.models.tabular`: the paper's UCI flows (:func:`tabular_flow`: MAF, REAL-NVP, GLOW)
  and the batch-normalisation flow layer normflows lacks;
* :mod:`molli_utils.models.indm`: a diffusion model in a flow's latent space (:func:`make_indm`);
* :mod:`molli_utils.models.vae`: the image VAEs of Table 1 (:func:`make_vae`; needs pythae,
  imported on demand).

Training lives in :mod:`molli_utils.training`; no module here imports it.
"""

from .ensemble import FlowEnsemble
from .indm import INDM, INDM_FLOWS, LogSNRRange, NoiseNet, make_indm
from .tabular import FLOWS, BatchNormFlow, ReverseOrder, count_parameters, tabular_flow
from .toy import flow_log_prob, flow_to_base, realnvp_2d

__all__ = [
    "FlowEnsemble",
    "INDM",
    "INDM_FLOWS",
    "LogSNRRange",
    "NoiseNet",
    "make_indm",
    "FLOWS",
    "BatchNormFlow",
    "ReverseOrder",
    "count_parameters",
    "tabular_flow",
    "flow_log_prob",
    "flow_to_base",
    "realnvp_2d",
]
