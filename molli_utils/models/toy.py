"""The paper's 2D toy flow, and the log-density of any normflows model written for ``torch.func``.

* :func:`realnvp_2d` -- the paper's toy model (Appendix D.3.1): REAL-NVP with 5 affine
  coupling layers whose conditioners are MLPs with 2 hidden layers of 64 units.
* :func:`flow_log_prob` -- ``model.log_prob(x)`` of a normflows model, bitwise, written
  without in-place updates so that ``torch.func.vmap`` can batch it over models
  (:class:`~molli_utils.models.ensemble.FlowEnsemble`).
* :func:`flow_to_base` -- the map from data to the flow's base space and its log-determinant.
* :func:`plain_relu` -- normflows' ``LeakyReLU(0.0)`` activations swapped for ``nn.ReLU`` (same function, faster).
* :func:`dead_units` -- the fraction of each coupling net's hidden units that are dead (never
  active) on a set of points: the mechanism of the mixture's collapse in chapter 3.
"""

from __future__ import annotations

from typing import Any, Optional

import normflows as nf
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "LEAKY_SLOPE", "realnvp_2d", "plain_relu", "dead_units", "flow_log_prob", "flow_to_base"]

#: The conditioners' activations :func:`realnvp_2d` builds; ``relu`` is the default (the stored rows' before the
#: activation became a setting). The paper does not say which its toy flows used.
ACTIVATIONS = ("relu", "leaky_relu")
#: The negative slope of ``activation="leaky_relu"`` (PyTorch's default).
LEAKY_SLOPE = 0.01


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_activation(activation: Any) -> str:
    """``activation`` if it is one of :data:`ACTIVATIONS`, else a ``ValueError`` naming them."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
    return activation


def realnvp_2d(
    layers: int = 5, hidden: int = 64, *, seed: Optional[int] = None, activation: str = "relu"
) -> nf.NormalizingFlow:
    r"""REAL-NVP for 2D data (paper Appendix D.3.1), from normflows modules.

    ``layers`` blocks of ``AffineCouplingBlock(MLP([1, hidden, hidden, 2], init_zeros=True))``
    followed by ``Permute(2, mode="swap")``, on a ``DiagGaussian(2)`` base (trainable
    mean and log-scale, initially N(0, I)). A coupling block keeps :math:`x_1` and maps
    :math:`x_2 \mapsto x_2 e^{s(x_1)} + t(x_1)`; the last MLP layer starts at zero,
    so the untrained flow is the identity and its density is the standard normal.

    The MLPs' activations are ReLUs: normflows builds them as ``LeakyReLU(0.0)`` ("standard
    ReLU", its docstring says), whose backward pass is several times slower on a CPU;
    :func:`plain_relu` swaps in ``nn.ReLU``, the same function (~12% of a toy training step;
    the same parameters bitwise after training, tested).

    ``activation``: ``"relu"`` (the default) or ``"leaky_relu"`` (``LeakyReLU(0.01)``,
    :data:`LEAKY_SLOPE`): a leaky unit still passes a gradient where its input is negative,
    so it cannot die (chapter 3). The initial weights are the same for both (an activation
    draws no random numbers).

    ``seed``: if given, the weights are drawn from ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng`` (the global RNG is left as it was); if ``None``, from the
    global RNG (the caller seeds).
    """
    _positive_int(layers, "layers")
    _positive_int(hidden, "hidden")
    check_activation(activation)
    leaky = LEAKY_SLOPE if activation == "leaky_relu" else 0.0
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        flows: list[nf.flows.Flow] = []
        for _ in range(layers):
            flows.append(
                nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, hidden, 2], leaky=leaky, init_zeros=True))
            )
            flows.append(nf.flows.Permute(2, mode="swap"))
        return plain_relu(nf.NormalizingFlow(nf.distributions.DiagGaussian(2), flows))


def plain_relu(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.LeakyReLU`` of slope 0 replaced by ``nn.ReLU`` (in place; returned)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.LeakyReLU) and child.negative_slope == 0.0:
                setattr(module, name, nn.ReLU(inplace=child.inplace))
    return model


def _couplings(model: nn.Module) -> list[nn.Module]:
    """The conditioner nets (``param_map``) of ``model``'s affine couplings, in the flow's sampling order."""
    return [m.param_map for m in model.modules() if isinstance(m, nf.flows.AffineCoupling)]


@torch.no_grad()
def dead_units(model: nf.NormalizingFlow, x: torch.Tensor) -> list[list[float]]:
    r"""For each affine coupling of ``model`` (in sampling order: the first is the one next to the
    base distribution), the fraction of each hidden layer's units that are **dead** on the points
    ``x`` ``[n, 2]``: whose input to the activation is :math:`\le 0` at every point as the points
    reach that coupling on their way from data to base (the direction ``log_prob``, and so
    training, takes). ``result[k][l]``: coupling ``k``, hidden layer ``l`` (0: first).

    A dead ReLU outputs 0 at every point and its weights get no gradient, so nothing the
    training does to these points revives it. If every unit of a layer is dead, the coupling's
    scale and shift are constants: the coupling is affine. (For ``leaky_relu`` nets the same
    count means "inactive": the unit's output is its input times 0.01, and it still learns.)
    """
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"x must be points [n, d], got shape {tuple(x.shape)}")
    nets = _couplings(model)
    if not nets:
        raise ValueError("model has no affine coupling (an AffineCouplingBlock of normflows) to inspect")
    seen: dict[int, list[torch.Tensor]] = {}
    hooks = []
    for k, net in enumerate(nets):
        acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
        seen[k] = []
        for act in acts:

            def hook(module, inputs, k=k):
                seen[k].append((inputs[0] > 0).any(0))

            hooks.append(act.register_forward_pre_hook(hook))
    try:
        flow_to_base(model, x.to(next(model.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
    return [[1.0 - float(alive.double().mean()) for alive in seen[k]] for k in range(len(nets))]


#: normflows blocks whose ``inverse`` is the sum over their sub-flows' inverses (run in reverse).
_COMPOSITE = (nf.flows.AffineCouplingBlock, nf.flows.GlowBlock)


def _inverse_steps(flow: nn.Module):
    """The elementary flows of ``flow`` in the order its ``inverse`` runs them."""
    if isinstance(flow, _COMPOSITE):
        for sub in reversed(flow.flows):
            yield from _inverse_steps(sub)
    else:
        yield flow


def flow_log_prob(model: nf.NormalizingFlow, x: torch.Tensor) -> torch.Tensor:
    r"""``model.log_prob(x)`` (shape ``[B]``), vmap-friendly.

    .. math:: \log q(x) = \log q_0(z) + \sum_k \log\left|\det \partial f_k^{-1} / \partial \cdot\right|,
              \qquad z = f_1^{-1} \circ \dots \circ f_K^{-1}(x).

    Same operations as normflows' ``NormalizingFlow.log_prob``, except that the
    log-determinants are accumulated out of place (``a = a + b``): normflows'
    in-place ``+=`` into a fresh ``zeros`` tensor fails under ``torch.func.vmap``.
    """
    z, log_det = flow_to_base(model, x)
    return log_det + model.q0.log_prob(z)


def flow_to_base(model: nf.NormalizingFlow, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The flow's map from data to its base space: ``z = f^{-1}(x)`` and
    :math:`\log|\det \partial f^{-1}(x) / \partial x|` (shape ``[B]``), accumulated out of place."""
    log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    z = x
    for flow in reversed(model.flows):
        for step in _inverse_steps(flow):
            z, ld = step.inverse(z)
            log_det = log_det + ld
    return z, log_det
