"""Ensembles in the loop: M models trained as one, each member with its own data, mollifier and fate.

A :class:`~molli_utils.models.FlowEnsemble` stacks the parameters of its M members along dim 0, so
one optimizer trains them all and one backward pass of the summed losses gives every member its own
gradient. What the loop needs on top of that lives here, with a single model as the one-member case:

* :func:`per_member`: the data sets, seeds and mollifiers, one per member, checked;
* :class:`Members`: the stacked batch ``[M, B, ...]``, the per-member loss values and finiteness
  checks of a backward pass, and an optimizer step that skips the members whose loss or gradient
  is non-finite (or that are frozen), via :func:`step_except`;
* :func:`grad_check` / :func:`member_grad_check`: a number per model (per member) that is finite
  iff its whole gradient is, with the gradient clipped first when asked to.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from .config import TrainConfig

__all__ = ["per_member", "check_data", "Members", "grad_check", "member_grad_check", "step_except"]


def check_data(data: Any, config: TrainConfig) -> None:
    """Raise a ValueError that says what is wrong with ``data`` (a float tensor [N, ...], N >= batch_size)."""
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"data must be a torch.Tensor [N, ...], got {type(data).__name__}; use torch.as_tensor")
    if data.ndim < 2:
        raise ValueError(
            f"data must have shape [N, ...] with at least 2 dims, got shape {tuple(data.shape)}; "
            "for 1-D data use data.unsqueeze(1)"
        )
    if not data.is_floating_point():
        raise ValueError(f"data must be floating point, got dtype {data.dtype}; convert it, e.g. data.float()")
    if config.batch_size > len(data):
        raise ValueError(f"batch_size={config.batch_size} is larger than the data ({len(data)} examples)")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contains non-finite values (nan or inf); clean them before training")


def per_member(data: Any, config: TrainConfig, mollifier: Any) -> tuple[list, list, list, Optional[int]]:
    """``(data sets, seeds, mollifiers, M)``, one entry per member, checked (a single model: one member, M None)."""
    ensemble = isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(d, torch.Tensor) for d in data)
    if not ensemble:
        if isinstance(config.seed, (tuple, list)) or isinstance(mollifier, (tuple, list)):
            raise ValueError("one seed or mollifier per member needs one data set per member: give data as a list")
        check_data(data, config)
        return [data], [config.seed], [mollifier], None
    m = len(data)
    seeds = list(config.seed) if isinstance(config.seed, (tuple, list)) else [config.seed] * m
    mollifiers = list(mollifier) if isinstance(mollifier, (tuple, list)) else [mollifier] * m
    if len(seeds) != m or len(mollifiers) != m:
        raise ValueError(f"need one seed and one mollifier per data set ({m}), got {len(seeds)} and {len(mollifiers)}")
    for d in data:
        check_data(d, config)
    if config.epochs is not None and len({config.steps_per_epoch(len(d)) for d in data}) > 1:
        raise ValueError("training by epochs needs equally many batches per epoch in every data set; give steps")
    return list(data), seeds, mollifiers, m


class Members:
    """The members of a run: ``count`` (M) of an ensemble whose ``params`` are stacked along dim 0, or
    one model (``count=None``). Per-member values are lists with one entry per member (one for a
    single model); :meth:`one` turns them into what a run records."""

    def __init__(self, count: Optional[int], params: list[torch.nn.Parameter], grad_clip: Optional[float]) -> None:
        if count and any(p.shape[:1] != (count,) for p in params):
            raise ValueError(
                f"one data set per member needs a model whose parameters are stacked along dim 0 "
                f"({count} members), e.g. a FlowEnsemble"
            )
        self.count, self.params, self.grad_clip = count, params, grad_clip

    def one(self, values: list) -> Any:
        """Per-member ``values`` as recorded: the list for an ensemble, the only entry for a single model."""
        return values if self.count else values[0]

    def each(self, recorded: Any) -> list:
        """The inverse of :meth:`one`: one entry per member."""
        return recorded if self.count else [recorded]

    def stack(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """The members' batches as the model's input: ``[M, B, ...]``, or a single model's ``[B, ...]``."""
        return torch.stack(xs) if self.count else xs[0]

    def backward(self, loss: torch.Tensor) -> tuple[list[float], list[bool]]:
        """Backpropagate ``loss`` (an ensemble's ``[M]``: their sum); per member, its loss value and whether it
        and its gradient are finite. A loss of another shape than ``[M]`` is a ValueError."""
        if self.count is None:
            loss.backward()
            check = grad_check(self.params, self.grad_clip)
            value = loss.item()  # waits for the step: the gradient check is then ready too
            return [value], [math.isfinite(value) and math.isfinite(check.item())]
        if loss.shape != (self.count,):
            raise ValueError(f"loss_fn must return one loss per member, shape [{self.count}], got {tuple(loss.shape)}")
        loss.sum().backward()
        check = member_grad_check(self.params, self.count, self.grad_clip).to(loss.device)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(check)
        return loss.detach().tolist(), finite.tolist()

    def update(self, optimizer: torch.optim.Optimizer, finite: list[bool], frozen: list[Optional[int]]) -> None:
        """``optimizer.step()`` for the members whose loss and gradient are ``finite`` and that are not
        ``frozen`` (``None``: not frozen); none at all if no member qualifies."""
        update = [ok and at is None for ok, at in zip(finite, frozen)]
        if all(update):
            optimizer.step()
        elif any(update):
            skip = torch.tensor([not u for u in update], device=self.params[0].device)
            step_except(optimizer, self.params, skip)


def grad_check(params: list[torch.nn.Parameter], grad_clip: Optional[float]) -> torch.Tensor:
    """A number that is finite iff all gradients are (clipping them to global norm ``grad_clip`` first, if given).

    With clipping: the global 2-norm. Without: the sum of the gradients' sums on the CPU (each
    gradient read once), the global 2-norm (fused kernels) elsewhere. Cost: ``benchmarks/README.md``.
    """
    params = [p for p in params if p.grad is not None]
    if grad_clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not params:
        return torch.zeros(())
    grads = [p.grad for p in params]
    if grads[0].device.type != "cpu" and hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.stack([g.sum() for g in grads]).sum()


def member_grad_check(params: list[torch.nn.Parameter], members: int, grad_clip: Optional[float]) -> torch.Tensor:
    """Per member ``[M]``: a number finite iff all of that member's gradient entries are.

    Parameters are stacked along dim 0. With ``grad_clip``, each member's slice of the
    gradient is first clipped to 2-norm ``grad_clip`` (as ``clip_grad_norm_`` does for
    one model) and the norms are returned; without, the sums of the entries.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    flat = torch.cat([g.reshape(members, -1) for g in grads], dim=1)
    if grad_clip is None:
        return flat.sum(dim=1)
    norms = flat.norm(dim=1)
    scale = (grad_clip / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.ndim - 1)))
    return norms


def step_except(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], bad: torch.Tensor) -> None:
    """``optimizer.step()``, then put back the parameters and per-element optimizer state of the
    members in ``bad`` (bool ``[M]``; parameters stacked along dim 0): for them the step is skipped.
    Scalar state (Adam's step count) is shared by all members and still advances. The members' rows
    are gathered and put back with ``index_select`` / ``index_copy_`` over one index tensor."""
    rows = bad.nonzero().squeeze(1)
    members = len(bad)
    saved = []
    for p in params:
        state = {
            k: v.index_select(0, rows)
            for k, v in optimizer.state.get(p, {}).items()
            if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == members
        }
        saved.append((p.detach().index_select(0, rows), state, p in optimizer.state))
    optimizer.step()
    with torch.no_grad():
        for p, (value, state, had_state) in zip(params, saved):
            p.index_copy_(0, rows, value)
            for k, v in optimizer.state[p].items():
                if not (torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == members):
                    continue
                if had_state:
                    v.index_copy_(0, rows, state[k])
                else:  # the state was created by this step: the skipped members start from zero
                    v.index_fill_(0, rows, 0.0)
