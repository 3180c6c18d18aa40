"""Models of the book, built from normflows modules, and a vectorised ensemble of flows.

* :func:`realnvp_2d` -- the paper's toy model (Appendix D.3.1): REAL-NVP with 5 affine
  coupling layers whose conditioners are MLPs with 2 hidden layers of 64 units.
* :func:`flow_log_prob` -- ``model.log_prob(x)`` of a normflows model, bitwise, written
  without in-place updates so that ``torch.func.vmap`` can batch it over models.
* :class:`FlowEnsemble` -- M flows of the same architecture with their parameters
  stacked along a new first dimension: one vectorised ``log_prob`` for all of them
  (``torch.func.stack_module_state`` + ``vmap(functional_call(...))``).
* :func:`train_ensemble` -- trains the M members at once with one Adam over the stacked
  parameters: :func:`molli_utils.training.train` with one data set, seed and mollifier
  per member (the ensemble case of the book's one training loop, with its checkpoints).
  Adam acts elementwise and the loss is the *sum* of the members' mean
  negative log-likelihoods, so every member follows the same updates as if it were
  trained alone (equal up to float rounding; tested). On a small CPU this is
  about 2.5x faster than M separate loops, whose tiny operations are dominated by
  per-operation overhead: the paper's 12 toy runs (20k steps, batch 256) train in
  ~6 min on one thread instead of ~15 min. Use ``torch.set_num_threads(1)`` for
  these tiny models: two threads gain ~20% on an idle 2-core machine but are
  3-30x slower when anything else runs on it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import normflows as nf
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .training import TrainConfig, train

__all__ = [
    "realnvp_2d",
    "flow_log_prob",
    "flow_to_base",
    "FlowEnsemble",
    "EnsembleTrainResult",
    "train_ensemble",
]

Mollify = Callable[[torch.Tensor, int], torch.Tensor]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def realnvp_2d(layers: int = 5, hidden: int = 64, *, seed: Optional[int] = None) -> nf.NormalizingFlow:
    r"""REAL-NVP for 2D data (paper Appendix D.3.1), from normflows modules.

    ``layers`` blocks of ``AffineCouplingBlock(MLP([1, hidden, hidden, 2], init_zeros=True))``
    followed by ``Permute(2, mode="swap")``, on a ``DiagGaussian(2)`` base (trainable
    mean and log-scale, initially N(0, I)). A coupling block keeps :math:`x_1` and maps
    :math:`x_2 \mapsto x_2 e^{s(x_1)} + t(x_1)`; the last MLP layer starts at zero,
    so the untrained flow is the identity and its density is the standard normal.

    ``seed``: if given, the weights are drawn from ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng`` (the global RNG is left as it was); if ``None``, from the
    global RNG (the caller seeds).
    """
    _positive_int(layers, "layers")
    _positive_int(hidden, "hidden")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        flows: list[nf.flows.Flow] = []
        for _ in range(layers):
            flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, hidden, 2], init_zeros=True)))
            flows.append(nf.flows.Permute(2, mode="swap"))
        return nf.NormalizingFlow(nf.distributions.DiagGaussian(2), flows)


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


class _LogProb(nn.Module):
    """Wraps a flow so that ``functional_call`` runs :func:`flow_log_prob`."""

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
        self._param_names, self._buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterDict({_key(n): nn.Parameter(p.detach().clone()) for n, p in params.items()})
        for n, b in buffers.items():
            self.register_buffer("buffer__" + _key(n), b.clone())
        self._template = [_LogProb(copy.deepcopy(models[0]))]  # a list: not registered as a submodule
        self._event_ndim = len(getattr(models[0].q0, "shape", (0,)))

    def __len__(self) -> int:
        return self.num_members

    def _tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = {"flow." + n: self.stacked[_key(n)] for n in self._param_names}
        buffers = {"flow." + n: getattr(self, "buffer__" + _key(n)) for n in self._buffer_names}
        return params, buffers

    def _member_log_prob(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._template[0], (params, buffers), (x,))

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


@dataclass
class EnsembleTrainResult:
    """What :func:`train_ensemble` returns (``L`` log points, ``M`` members).

    * ``step``: steps done at each log point.
    * ``loss`` ``[L, M]``: each member's mean finite loss over the window ending there (nan if none).
    * ``noise_level`` ``[L, M]``: each member's mollifier noise level at the window's last batch.
    * ``num_nonfinite``: per member, steps with a non-finite loss or gradient (each skipped)
      before it was frozen.
    * ``diverged_at``: per member, the 0-based step at which it was frozen after
      ``max_nonfinite_in_row`` non-finite steps in a row, else ``None``.
    * ``elapsed``: wall-clock seconds.
    """

    step: list[int]
    loss: torch.Tensor
    noise_level: torch.Tensor
    num_nonfinite: list[int]
    diverged_at: list[Optional[int]]
    elapsed: float


def train_ensemble(
    ensemble: FlowEnsemble,
    data: Union[torch.Tensor, Sequence[torch.Tensor]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seeds: Sequence[int],
    mollifiers: Optional[Sequence[Optional[Mollify]]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    log_every: Optional[int] = None,
    max_nonfinite_in_row: int = 20,
    callback: Optional[Callable[[int, FlowEnsemble], None]] = None,
    progress: bool = False,
) -> EnsembleTrainResult:
    """Train all members of ``ensemble`` at once by maximum likelihood (paper Algorithm 1 per member).

    Member ``m`` trains on ``data[m]`` (``[N, ...]``; data sets may differ in N) with batches
    drawn as in :mod:`molli_utils.training` from ``seeds[m]``, each batch mapped by
    ``mollifiers[m](x, step)`` (``None``: vanilla; e.g. ``Mollifier('gaussian', horizon=steps,
    generator=...)``). The loss is :math:`\\sum_m \\mathrm{NLL}_m`, so with Adam (default:
    ``Adam(ensemble.parameters(), lr)``, plain: on the CPU the fused kernel changed where the
    20k-step mollified mixture runs end) each member gets the update it would get alone
    (up to float rounding).

    A member whose loss or gradient is non-finite skips that step (its parameters and
    Adam moments are put back; only Adam's shared step count, used in the bias
    correction, still advances); after ``max_nonfinite_in_row`` in a row it is frozen
    (``diverged_at``) and the others go on; once every member is frozen,
    :class:`~molli_utils.training.DivergenceError` is raised. ``callback(steps_done, ensemble)``
    runs after each step; ``log_every`` (default: at most ~1000 log points) thins the loss history.

    A thin wrapper over :func:`molli_utils.training.train`; call that directly for
    checkpoints (``TrainConfig(checkpoint_dir=...)``), metrics or ``grad_clip``.
    """
    m = ensemble.num_members
    if len(seeds) != m or (mollifiers is not None and len(mollifiers) != m):
        raise ValueError(f"need one seed (and one mollifier, if given) per member ({m})")
    datasets = list(data.unbind(0)) if isinstance(data, torch.Tensor) else list(data)
    if len(datasets) != m:
        raise ValueError(f"need one data set per member ({m}), got {len(datasets)}")
    config = TrainConfig(batch_size=batch_size, lr=lr, steps=steps, seed=tuple(int(s) for s in seeds),
                         log_every=log_every, max_nonfinite_in_row=max_nonfinite_in_row, progress=progress,
                         desc="ensemble")  # fmt: skip
    mollifiers = list(mollifiers) if mollifiers is not None else [None] * m
    result = train(ensemble, datasets, config, mollifier=mollifiers, optimizer=optimizer, callback=callback)
    return EnsembleTrainResult(
        step=result.history["step"], loss=result.member_losses.float(),
        noise_level=torch.tensor(result.history["noise_level"], dtype=torch.float32),
        num_nonfinite=result.member_nonfinite, diverged_at=result.diverged_at, elapsed=result.elapsed,
    )  # fmt: skip
