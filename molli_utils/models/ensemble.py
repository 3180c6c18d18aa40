"""A vectorised ensemble of flows: M normflows models of one architecture evaluated (and trained) at once.

:class:`FlowEnsemble` stacks the members' parameters along a new first dimension and runs
:func:`~molli_utils.models.toy.flow_log_prob` of every member in one call
(``torch.func.stack_module_state`` + ``vmap(functional_call(...))``). The book's training
loop (:func:`molli_utils.training.train` with one data set, seed and mollifier per member)
trains it with one Adam over the stacked parameters: Adam acts elementwise and the loss is
the *sum* of the members' mean negative log-likelihoods, so every member follows the same
updates as if it were trained alone (equal up to float rounding; tested). Use
``torch.set_num_threads(1)`` for these tiny models; the speed against M separate loops is
measured by ``benchmarks/bench_toy2d.py`` (``benchmarks/README.md``).
"""

from __future__ import annotations

import copy
from typing import Sequence

import normflows as nf
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .toy import flow_log_prob

__all__ = ["FlowEnsemble", "FlowLogProb"]


class FlowLogProb(nn.Module):
    """A flow whose ``forward(x)`` is :func:`~molli_utils.models.toy.flow_log_prob` (``[B, D] -> [B]``), so that
    ``torch.func.functional_call`` with the flow's parameters (named ``flow.<name>``) runs it: the template
    that :class:`FlowEnsemble` vectorises over its members."""

    def __init__(self, flow: nf.NormalizingFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return flow_log_prob(self.flow, x)


def _key(name: str) -> str:
    return name.replace(".", "__")  # module attribute names cannot contain dots


class FlowEnsemble(nn.Module):
    """``M`` normflows models of one architecture, evaluated together with ``torch.func.vmap``.

    The members' parameters are copied and stacked along a new dimension 0
    (``torch.func.stack_module_state``); :meth:`parameters` yields these stacked
    tensors, so one optimizer trains all members. :meth:`log_prob` runs
    :func:`flow_log_prob` of every member at once; :meth:`members` unstacks the
    current parameters into ordinary, independent normflows models (for sampling,
    plotting, saving). The input models are not modified nor linked.

    Members are evaluated with their parameters swapped in by ``functional_call``;
    layers whose behaviour depends on train/eval mode or that update buffers
    during the forward pass (batch norm, dropout) are not supported. Tested with
    :func:`realnvp_2d`.
    """

    def __init__(self, models: Sequence[nf.NormalizingFlow]) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("FlowEnsemble needs at least one model")
        layout = [(k, v.shape) for k, v in models[0].state_dict().items()]
        if any([(k, v.shape) for k, v in m.state_dict().items()] != layout for m in models[1:]):
            raise ValueError("all members of a FlowEnsemble must have the same architecture (state_dict layout)")
        params, buffers = stack_module_state(models)
        self.num_members = len(models)
        # (name in the template, key here) pairs, built once: _tensors runs on every step
        self._param_keys = [("flow." + n, _key(n)) for n in params]
        self._buffer_keys = [("flow." + n, "buffer__" + _key(n)) for n in buffers]
        self.stacked = nn.ParameterDict({_key(n): nn.Parameter(p.detach().clone()) for n, p in params.items()})
        for n, b in buffers.items():
            self.register_buffer("buffer__" + _key(n), b.clone())
        self._template = [FlowLogProb(copy.deepcopy(models[0]))]  # a list: not registered as a submodule
        template = self._template[0]
        self._tied = len(list(template.named_parameters(remove_duplicate=False))) != len(params) or len(
            list(template.named_buffers(remove_duplicate=False))
        ) != len(buffers)
        self._event_ndim = len(getattr(models[0].q0, "shape", (0,)))

    def __len__(self) -> int:
        return self.num_members

    def _tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        stacked, buffers = self.stacked, self._buffers
        return ({n: stacked[k] for n, k in self._param_keys}, {n: buffers[k] for n, k in self._buffer_keys})

    def _member_log_prob(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        # without tied weights (one tensor under two names), functional_call's search for them, a walk
        # over every submodule on every call, is skipped: same values, ~3% of a toy step
        return functional_call(self._template[0], (params, buffers), (x,), tie_weights=self._tied)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log densities ``[M, B]``: ``x`` is ``[M, B, *event]`` (one batch per member) or
        ``[B, *event]`` (the same points for every member, e.g. a plotting grid)."""
        if x.ndim == self._event_ndim + 2 and x.shape[0] == self.num_members:
            x_dim = 0
        elif x.ndim == self._event_ndim + 1:
            x_dim = None
        else:
            raise ValueError(
                f"x must have shape [M={self.num_members}, B, *event] or [B, *event] with "
                f"{self._event_ndim} event dim(s), got {tuple(x.shape)}"
            )
        params, buffers = self._tensors()
        return vmap(self._member_log_prob, in_dims=(0, 0, x_dim))(params, buffers, x)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's mean negative log-likelihood ``[M]`` (its ``forward_kld(x_m)``)."""
        return -self.log_prob(x).mean(dim=-1)

    def forward_kld(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`nll`: the per-member loss ``[M]`` that :func:`~molli_utils.training.train` uses by default."""
        return self.nll(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(x)

    @torch.no_grad()
    def member(self, i: int) -> nf.NormalizingFlow:
        """An independent normflows model holding member ``i``'s current parameters."""
        if not -self.num_members <= i < self.num_members:
            raise IndexError(f"member index {i} out of range for an ensemble of {self.num_members}")
        model = copy.deepcopy(self._template[0].flow)
        params, buffers = self._tensors()
        state = {n[len("flow.") :]: t[i].detach().clone() for n, t in {**params, **buffers}.items()}
        model.load_state_dict(state)
        return model.to(next(iter(params.values())).device)

    def members(self) -> list[nf.NormalizingFlow]:
        """All members as independent normflows models (copies: training the ensemble does not change them)."""
        return [self.member(i) for i in range(self.num_members)]

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """``num_samples`` samples of every member: ``[M, num_samples, *event]`` (global torch RNG)."""
        return torch.stack([m.sample(num_samples)[0] for m in self.members()])
