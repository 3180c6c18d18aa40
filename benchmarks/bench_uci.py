"""A UCI training step: the book's flows against a plain-PyTorch loop of the same model and the compute bound.

For each flow of the paper's official code (``molli_utils.models.tabular.tabular_flow(kind, 11)``, the
default ``variant="official"``) on the 11 red-wine variables, batch 100:

* **ours**: one step as the UCI experiment takes it -- the book's training loop
  (``molli_utils.training.train``: batches, mollifier call, finite-gradient check, logging) with the
  experiment's fused Adam (lr 1e-4, weight decay 1e-6), timed over whole epochs (13 steps) including
  the official code's once-per-epoch recomputation of the batch-norm statistics;
* **plain**: what the official code does -- plain PyTorch modules written out here (MADE, coupling, LU,
  batch norm: the equations of uci/flows.py), ``zero_grad / backward / step`` with PyTorch's default Adam,
  and the same once-per-epoch batch-norm pass;
* **bound**: the matrix-product FLOPs of a step (forward and backward, counted with
  ``torch.utils.flop_counter.FlopCounterMode``) divided by the FLOP rate of a 100 x 512 x 512 matrix
  product measured here: no implementation of the step can be faster than that on this core;
* **floor**: what a step of the official code's recipe cannot avoid here -- the matrix products of the step
  *and* of its share of the per-epoch batch-norm pass at that rate, plus one fused Adam update timed alone
  (it streams every parameter, gradient and moment estimate through memory: bound by memory traffic,
  not FLOPs). Everything else -- the elementwise operations, the flows' bookkeeping, Python -- is what an
  implementation could still save.

Prints medians over alternating repeats measured in one run, the ratios ours / plain, ours / bound and
ours / floor, and projects the minutes of Table 4's 72 runs on 2 cores at each.

``--levers`` also times the speed-ups the speed issue proposed, per member step, against one model
stepped alone (alternating, medians):

* **ensemble**: ``--members`` models of one flow stacked and trained as one (``torch.func.stack_module_state``
  + ``vmap`` of the vmap-friendly :func:`~molli_utils.models.toy.flow_log_prob`, one fused Adam over the
  stacked parameters), as the toys do with :class:`~molli_utils.models.FlowEnsemble`;
* **compiled**: the loss compiled with ``torch.compile`` (the compilation itself, tens of seconds, is
  reported apart and not in the step time);
* **masks hoisted** (MAF only): MADE's masks applied once instead of on every forward
  (:func:`hoist_masks`), with the largest loss difference to the model stepped alone after the timings
  (0: the same model, bitwise);
* **bf16 products** (on a CPU with a bf16 matrix unit, e.g. Intel's AMX): a copy of the model stepped with
  ``torch.set_float32_matmul_precision("medium")``, under which oneDNN runs float32 matrix products on bf16
  inputs with float32 accumulation (:func:`molli_utils.runtime.matmul_precision`, the UCI experiment's
  ``matmul="bf16"``); it changes the numbers, so the loss gap to the model stepped alone is reported too;
* **compiled with bf16 products**: both of the last levers at once.

``--profile`` shows where a step of ours goes (:func:`step_profile`): the matrix products and the fused Adam
update (their self time under ``torch.profiler``) and the rest, in fp32 and, on a CPU with bf16 instructions,
with bf16 products, and the minutes of Table 4 at those step times and if the rest cost nothing: what no
loop of these models could go below while the products and Adam run as fast as they do here.

Run:  make bench      (or: python -m benchmarks.bench_uci --help)
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import statistics
import time
from typing import Callable, Optional

import numpy as np
import scipy.linalg
import torch
from normflows.nets.made import MaskedLinear
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from molli_utils import Mollifier, TrainConfig, train
from molli_utils.models.ensemble import FlowLogProb  # flow_log_prob as forward, for functional_call
from molli_utils.models.tabular import FLOWS, count_parameters, recompute_batchnorm_statistics, tabular_flow
from molli_utils.models.toy import flow_log_prob
from molli_utils.runtime import bf16_matmul_supported, matmul_precision

HIDDEN, LAYERS, BATCH = 512, 5, 100


# ---- the official code's model, in plain PyTorch (uci/flows.py) ---------------------------------------
class _Masked(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class _MADE(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        d_in, d_hid = torch.arange(d), torch.arange(h) % (d - 1)
        d_out = torch.arange(2 * d) % d - 1
        self.net = nn.Sequential(
            _Masked(d, h, (d_hid[:, None] >= d_in).float()),
            nn.ReLU(),
            _Masked(h, h, (d_hid[:, None] >= d_hid).float()),
            nn.ReLU(),
            _Masked(h, 2 * d, (d_out[:, None] >= d_hid).float()),
        )

    def forward(self, x):
        m, a = self.net(x).chunk(2, 1)
        return (x - m) * torch.exp(-a), -a.sum(1)


class _Coupling(nn.Module):
    def __init__(self, d: int, h: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.s = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, d))
        self.t = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

    def forward(self, x):
        xm = x * self.mask
        log_s, t = self.s(xm) * (1 - self.mask), self.t(xm) * (1 - self.mask)
        return x * torch.exp(log_s) + t, log_s.sum(1)


class _LU(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        w = torch.empty(d, d)
        nn.init.orthogonal_(w)
        p, lo, up = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in scipy.linalg.lu(w.numpy()))
        s = torch.diagonal(up)
        self.register_buffer("p", p)
        self.register_buffer("sign", torch.sign(s))
        self.register_buffer("mask", torch.tril(torch.ones(d, d), -1))
        self.lo, self.up, self.log_s = nn.Parameter(lo), nn.Parameter(up), nn.Parameter(s.abs().log())

    def forward(self, x):
        w = (
            self.p
            @ (self.lo * self.mask + torch.eye(len(self.mask)))
            @ (self.up * self.mask.T + torch.diag(self.sign * self.log_s.exp()))
        )
        return x @ w, self.log_s.sum().expand(len(x))


class _BN(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.log_gamma, self.beta = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("var", torch.ones(d))
        self.store = False

    def forward(self, x):
        if self.training:
            mean, var = x.mean(0), (x - x.mean(0)).pow(2).mean(0) + 1e-5
            if self.store:
                self.mean.copy_(mean.detach())
                self.var.copy_(var.detach())
        else:
            mean, var = self.mean, self.var
        return (x - mean) / var.sqrt() * self.log_gamma.exp() + self.beta, (self.log_gamma - 0.5 * var.log()).sum()


class _Flip(nn.Module):
    def forward(self, x):
        return x.flip(1), 0.0


class PlainFlow(nn.Module):
    """The official code's MAF / REAL-NVP / GLOW (uci/main.py:172-205), written out in plain PyTorch."""

    def __init__(self, kind: str, d: int = 11, h: int = HIDDEN, layers: int = LAYERS) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        mask = (torch.arange(d) % 2).float()
        for _ in range(layers):
            if kind == "maf":
                mods += [_MADE(d, h), _BN(d), _Flip()]
            elif kind == "realnvp":
                mods += [_Coupling(d, h, mask), _BN(d)]
            else:
                mods += [_BN(d), _LU(d), _Coupling(d, h, mask)]
            mask = 1 - mask
        self.layers = nn.ModuleList(mods)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight)
                nn.init.zeros_(m.bias)

    def log_prob(self, x):
        log_det = 0.0
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return log_det - 0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    @torch.no_grad()
    def recompute_statistics(self, x):
        bns = [m for m in self.modules() if isinstance(m, _BN)]
        for bn in bns:
            bn.store = True
        self.log_prob(x)
        for bn in bns:
            bn.store = False


# ---- timings -----------------------------------------------------------------------------------------
def _data(n: int = 1296, dim: int = 11) -> tuple[torch.Tensor, str]:
    try:
        from molli_utils.data.uci import load_uci

        return torch.from_numpy(load_uci("redwine", download=False).train), "red wine (UCI)"
    except (FileNotFoundError, ValueError):
        return torch.randn(
            n, dim, generator=torch.Generator().manual_seed(0)
        ), "random normal data of the red-wine shape (UCI arrays not found: set MOLLI_DATA)"


def ours_epochs(kind: str, data: torch.Tensor, epochs: int) -> float:
    """Seconds per step of ``epochs`` epochs of the UCI experiment's loop (official flows, fused Adam, mollified)."""
    model = tabular_flow(kind, data.shape[1], seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6, fused=True)
    config = TrainConfig(batch_size=BATCH, lr=1e-4, epochs=epochs, drop_last=False, progress=False)
    steps = config.total_steps(len(data))
    result = train(
        model,
        data,
        config,
        optimizer=opt,
        mollifier=Mollifier("gaussian", horizon=steps),
        epoch_end=lambda e, m: recompute_batchnorm_statistics(m, data),
    )
    return result.elapsed / steps


def plain_epochs(kind: str, data: torch.Tensor, epochs: int, gen: torch.Generator) -> float:
    """Seconds per step of ``epochs`` epochs of the official code's plain loop (default Adam)."""
    model = PlainFlow(kind, data.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(data), generator=gen).split(BATCH):
            x = data[idx]
            x = math.sqrt(0.5) * x + math.sqrt(0.5) * torch.randn_like(x)
            opt.zero_grad()
            (-model.log_prob(x).mean()).backward()
            opt.step()
            steps += 1
        model.recompute_statistics(data)
    return (time.perf_counter() - start) / steps


def matmul_flops(kind: str, dim: int = 11) -> float:
    """FLOPs of the matrix products of one training step (forward and backward) of the official flow."""
    model = tabular_flow(kind, dim, seed=0)
    x = torch.randn(BATCH, dim)
    with FlopCounterMode(display=False) as counter:
        model.forward_kld(x).backward()
    return float(counter.get_total_flops())


def batchnorm_pass_flops(kind: str, data: torch.Tensor) -> float:
    """FLOPs of the matrix products of the once-per-epoch batch-norm pass over ``data``, per training step
    (the pass divided by the epoch's ``ceil(len(data) / BATCH)`` steps)."""
    model = tabular_flow(kind, data.shape[1], seed=0)
    with FlopCounterMode(display=False) as counter:
        recompute_batchnorm_statistics(model, data)
    return float(counter.get_total_flops()) / math.ceil(len(data) / BATCH)


def optimizer_seconds(kind: str, dim: int = 11, *, inner: int = 10, repeats: int = 11) -> float:
    """Seconds of one fused Adam update of the official flow ``kind`` alone (gradients already computed):
    the median of ``repeats`` timings of ``inner`` updates. It reads and writes every parameter, gradient
    and moment estimate, so it is bound by memory traffic, not by FLOPs."""
    model = tabular_flow(kind, dim, seed=0)
    model.forward_kld(torch.randn(BATCH, dim)).backward()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6, fused=True)
    opt.step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            opt.step()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def matmul_rate(m: int = BATCH, k: int = HIDDEN, n: int = HIDDEN, *, inner: int = 20, repeats: int = 20) -> float:
    """FLOP/s of an ``m x k`` by ``k x n`` matrix product on this core (default: 100 x 512 x 512, a UCI flow's
    hidden layer), the median of ``repeats`` timings of ``inner`` products after two untimed ones."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    times = []
    for _ in range(repeats + 2):
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        times.append((time.perf_counter() - t) / inner)
    return 2 * m * k * n / statistics.median(times[2:])


def hoist_masks(model: nn.Module) -> int:
    """Apply the masks of ``model``'s MADEs once instead of on every forward; returns the number of layers changed.

    normflows' ``MaskedLinear`` computes ``linear(x, W * M, b)``: a product of the 512 x 512 weight with its
    mask on every forward and another on every backward. Here each such layer's weight is multiplied by its
    mask once, in place; its forward is ``linear(x, W, b)``; and its gradient is multiplied by the mask in place
    once accumulated. The masked entries are then zero with zero gradient, which an elementwise optimizer
    (Adam, with weight decay too) keeps at zero, and every other entry sees the same numbers as before: the
    same model, bitwise. It holds only while nothing but such an optimizer writes the weights (no loading of an
    unmasked state, no re-initialisation, no ``functional_call`` with other tensors), which is why the book's
    models keep normflows' layer and this lever is only measured.
    """
    layers = [m for m in model.modules() if isinstance(m, MaskedLinear)]
    for layer in layers:
        with torch.no_grad():
            layer.weight.mul_(layer.mask)
        layer.forward = functools.partial(nn.functional.linear, weight=layer.weight, bias=layer.bias)
        layer.weight.register_post_accumulate_grad_hook(functools.partial(_mask_gradient, mask=layer.mask))
    return len(layers)


def _mask_gradient(weight: torch.Tensor, mask: torch.Tensor) -> None:
    weight.grad.mul_(mask)


def _bf16_step(loss: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> None:
    with matmul_precision("bf16"):
        _step(loss, opt)


def _step(loss: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> None:
    opt.zero_grad(set_to_none=True)
    loss().backward()
    opt.step()


def _compiled_copy(
    kind: str, dim: int, adam: dict
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.optim.Optimizer]:
    """A fresh official flow (seed 0, training mode): its loss ``-flow_log_prob(model, x).mean()`` under
    ``torch.compile``, and its Adam."""
    model = tabular_flow(kind, dim, seed=0).train()
    return torch.compile(lambda xi: -flow_log_prob(model, xi).mean()), torch.optim.Adam(model.parameters(), **adam)


def lever_timings(
    kind: str, *, members: int = 4, repeats: int = 5, steps: int = 10, dim: int = 11, compile_loss: bool = True
) -> dict[str, float]:
    """Seconds per member step of ``kind`` (official variant, batch 100, fused Adam, training mode): one model
    alone (``alone_s``), a vmapped ensemble of ``members`` (``ensemble_s``), if ``compile_loss`` the loss
    under ``torch.compile`` (``compiled_s``, with ``compile_s`` the first call's seconds) and, for a flow with
    MADEs, a copy of the model alone with its masks hoisted (``hoisted_s``, :func:`hoist_masks`), on a CPU with
    bf16 support a copy stepped with bf16 matrix products (``bf16_s``, :func:`matmul_precision`); medians of
    ``repeats`` alternating timings of ``steps`` steps. ``ensemble_loss_gap``: the largest difference between
    the ensemble's per-member losses and the separate models' at the start (0 up to rounding);
    ``hoisted_loss_gap``: between the hoisted copy's loss and the model's after both took the same steps on
    the same batch (0: bitwise the same model); ``bf16_loss_gap``: the same for the bf16 copy (not 0: its
    products round their inputs to bf16)."""
    models = [tabular_flow(kind, dim, seed=s).train() for s in range(members)]
    x = torch.randn(members, BATCH, dim, generator=torch.Generator().manual_seed(0))
    adam = dict(lr=1e-4, weight_decay=1e-6, fused=True)
    alone = models[0]
    alone_opt = torch.optim.Adam(alone.parameters(), **adam)
    hoisted, bf16 = copy.deepcopy(alone), copy.deepcopy(alone)
    params, buffers = stack_module_state(models)
    params = {k: nn.Parameter(v.detach().clone()) for k, v in params.items()}
    template = FlowLogProb(copy.deepcopy(models[0]))

    def member_loss(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
        named = ({"flow." + k: v for k, v in p.items()}, {"flow." + k: v for k, v in b.items()})
        return -functional_call(template, named, (xi,)).mean()

    ens_loss = vmap(member_loss, in_dims=(0, 0, 0))
    ens_opt = torch.optim.Adam(params.values(), **adam)
    with torch.no_grad():
        gap = float(
            (ens_loss(params, buffers, x) - torch.stack([-m.log_prob(xi).mean() for m, xi in zip(models, x)]))
            .abs()
            .max()
        )
    runs: dict[str, Callable[[], None]] = {
        "alone_s": lambda: _step(lambda: alone.forward_kld(x[0]), alone_opt),
        "ensemble_s": lambda: _step(lambda: ens_loss(params, buffers, x).sum(), ens_opt),
    }
    per_call = {"alone_s": 1, "ensemble_s": members}
    out = {"members": float(members), "ensemble_loss_gap": gap}
    if hoist_masks(hoisted):
        hoisted_opt = torch.optim.Adam(hoisted.parameters(), **adam)
        runs["hoisted_s"] = lambda: _step(lambda: hoisted.forward_kld(x[0]), hoisted_opt)
        per_call["hoisted_s"] = 1
    if bf16_matmul_supported():
        bf16_opt = torch.optim.Adam(bf16.parameters(), **adam)
        runs["bf16_s"] = lambda: _bf16_step(lambda: bf16.forward_kld(x[0]), bf16_opt)
        per_call["bf16_s"] = 1
    if compile_loss:
        compiled, twin_opt = _compiled_copy(kind, dim, adam)
        start = time.perf_counter()
        _step(lambda: compiled(x[0]), twin_opt)
        out["compile_s"] = time.perf_counter() - start
        runs["compiled_s"] = lambda: _step(lambda: compiled(x[0]), twin_opt)
        per_call["compiled_s"] = 1
        if bf16_matmul_supported():  # both levers at once: the loss compiled for, and stepped with, bf16 products
            compiled_both, both_opt = _compiled_copy(kind, dim, adam)
            runs["compiled_bf16_s"] = lambda: _bf16_step(lambda: compiled_both(x[0]), both_opt)
            per_call["compiled_bf16_s"] = 1
    times: dict[str, list[float]] = {k: [] for k in runs}
    for f in runs.values():  # warm-up
        f(), f()
    for _ in range(repeats):
        for name, f in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                f()
            times[name].append((time.perf_counter() - start) / steps / per_call[name])
    out.update({k: statistics.median(v) for k, v in times.items()})
    with torch.no_grad():  # each copy took the same steps on the same batch as the model alone
        for name, twin_model in (("hoisted", hoisted), ("bf16", bf16)):
            if f"{name}_s" in runs:
                out[f"{name}_loss_gap"] = float((alone.forward_kld(x[0]) - twin_model.forward_kld(x[0])).abs())
    return out


#: The profiler's names of the matrix products (``Linear`` runs ``addmm`` forward and ``mm`` backward).
PRODUCT_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def step_profile(
    kind: str, data: torch.Tensor, *, matmul: str = "fp32", epochs: int = 2, repeats: int = 3
) -> dict[str, float]:
    """Where the seconds of one step of the UCI loop (:func:`ours_epochs`, batch-norm pass included) go, with
    ``matmul`` products (:func:`~molli_utils.runtime.matmul_precision`), medians of ``repeats`` timed runs of
    ``epochs`` epochs alternating with as many under ``torch.profiler``: ``total_s`` timed without the profiler;
    ``products_s`` and ``adam_s`` the self CPU time of the matrix products (:data:`PRODUCT_OPS`) and of the fused
    Adam kernel under it; ``rest_s = total_s - products_s - adam_s``: the elementwise operations, autograd's
    bookkeeping and Python, all that fusing (``torch.compile``) could still save."""
    steps = epochs * math.ceil(len(data) / BATCH)
    parts: dict[str, list[float]] = {"total_s": [], "products_s": [], "adam_s": []}
    with matmul_precision(matmul):
        ours_epochs(kind, data, 1)  # warm-up
        for _ in range(repeats):
            parts["total_s"].append(ours_epochs(kind, data, epochs))
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                ours_epochs(kind, data, epochs)
            self_s = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
            parts["products_s"].append(sum(self_s.get(k, 0.0) for k in PRODUCT_OPS) / steps)
            parts["adam_s"].append(self_s.get("aten::_fused_adam_", 0.0) / steps)
    out = {k: statistics.median(v) for k, v in parts.items()}
    out["rest_s"] = out["total_s"] - out["products_s"] - out["adam_s"]
    return out


def table_projection(
    ours_s: dict[str, float],
    bound_s: dict[str, float],
    *,
    seeds: int = 4,
    modes: int = 2,
    cores: int = 2,
    floor_s: Optional[dict[str, float]] = None,
) -> dict[str, float]:
    """Minutes of the UCI table (official variant, ``modes`` x ``seeds`` runs per data set and flow) on ``cores``
    workers if every step took ``ours_s[flow]`` (and at the compute bound ``bound_s[flow]``, and at the floor
    ``floor_s[flow]`` if given): the steps per run are read from the stored ``uci.csv`` rows (150 epochs of each
    data set's training split, batch 100)."""
    from molli_utils.experiments import results

    rows = results.load("uci.csv")
    steps = rows[rows.variant == "official"].groupby("dataset")["steps"].first()
    runs = len(steps) * len(FLOWS) * seeds * modes
    per_flow = float(steps.sum()) * seeds * modes

    def minutes(step_s: dict[str, float]) -> float:
        return per_flow * sum(step_s[f] for f in FLOWS) / cores / 60

    out = {"runs": runs, "steps": per_flow * len(FLOWS), "ours_min": minutes(ours_s), "bound_min": minutes(bound_s)}
    if floor_s is not None:
        out["floor_min"] = minutes(floor_s)
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="alternating timings per flow (median reported)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing (13 steps each on red wine)")
    parser.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--levers",
        action="store_true",
        help="also time a vmapped ensemble, torch.compile, MADE's masks hoisted and bf16 products",
    )
    parser.add_argument("--members", type=int, default=4, help="ensemble size for --levers (default 4: the seeds)")
    parser.add_argument("--no-compile", action="store_true", help="with --levers: skip torch.compile")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also show where a step's time goes (matrix products, "
        "Adam, the rest), in fp32 and, where the CPU has them, bf16 products",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, source = _data()
    gen = torch.Generator().manual_seed(0)
    rate = matmul_rate()
    print(
        f"UCI training step ({source}: {len(data)} rows, batch {BATCH}, {args.threads} thread(s)); medians of "
        f"{args.repeats} alternating timings of {args.epochs} epochs; matrix product here: {rate / 1e9:.1f} GFLOP/s"
    )
    out = {}
    for kind in args.flows:
        ours_epochs(kind, data, 1), plain_epochs(kind, data, 1, gen)  # warm-up
        t_ours, t_plain = [], []
        for _ in range(args.repeats):
            t_ours.append(ours_epochs(kind, data, args.epochs))
            t_plain.append(plain_epochs(kind, data, args.epochs, gen))
        flops = matmul_flops(kind)
        bn_flops = batchnorm_pass_flops(kind, data)
        med = {
            "ours_s": statistics.median(t_ours),
            "plain_s": statistics.median(t_plain),
            "bound_s": flops / rate,
            "gflop": flops / 1e9,
            "adam_s": optimizer_seconds(kind, data.shape[1]),
        }
        med["floor_s"] = (flops + bn_flops) / rate + med["adam_s"]
        for base in ("plain", "bound", "floor"):
            med[f"ours_over_{base}"] = med["ours_s"] / med[f"{base}_s"]
        out[kind] = med
        print(
            f"  {kind:8s} ({count_parameters(tabular_flow(kind, data.shape[1])):,} parameters, {med['gflop']:.2f} GFLOP "
            f"per step): ours {med['ours_s'] * 1e3:6.1f} ms/step, plain PyTorch {med['plain_s'] * 1e3:6.1f} ms, bound "
            f"{med['bound_s'] * 1e3:5.1f} ms, floor {med['floor_s'] * 1e3:5.1f} ms (Adam alone "
            f"{med['adam_s'] * 1e3:.1f} ms); ours/plain {med['ours_over_plain']:.2f}, ours/bound "
            f"{med['ours_over_bound']:.2f}, ours/floor {med['ours_over_floor']:.2f}"
        )
    if set(out) == set(FLOWS):
        ours, bound, floor = ({k: v[f"{what}_s"] for k, v in out.items()} for what in ("ours", "bound", "floor"))
        table = table_projection(ours, bound, floor_s=floor)
        out["table"] = table
        print(
            f"  Table 4's {table['runs']} vanilla and mollification runs (3 data sets x 3 flows x 4 seeds, "
            f"{table['steps'] / 1e6:.2f} M steps) on 2 cores, at these step times: ours {table['ours_min']:.0f} min, "
            f"bound {table['bound_min']:.0f} min, floor {table['floor_min']:.0f} min\n  (red wine's step time for "
            "every data set; per-epoch evaluation and two processes slowing each other not counted: a lower bound "
            "on the wall time)"
        )
    if args.levers:
        print(f"Levers, seconds per member step, medians of {args.repeats} alternating timings of 10 steps:")
        for kind in args.flows:
            lev = lever_timings(kind, members=args.members, repeats=args.repeats, compile_loss=not args.no_compile)
            out[kind].update({"lever_" + k: v for k, v in lev.items()})
            line = (
                f"  {kind:8s} alone {lev['alone_s'] * 1e3:6.1f} ms; ensemble of {args.members} "
                f"{lev['ensemble_s'] * 1e3:6.1f} ms per member (speed-up {lev['alone_s'] / lev['ensemble_s']:.2f}x, "
                f"loss gap {lev['ensemble_loss_gap']:.1e})"
            )
            if "compiled_s" in lev:
                line += (
                    f"; torch.compile {lev['compiled_s'] * 1e3:6.1f} ms (speed-up "
                    f"{lev['alone_s'] / lev['compiled_s']:.2f}x, compiled in {lev['compile_s']:.0f} s)"
                )
            if "hoisted_s" in lev:
                line += (
                    f"; masks hoisted {lev['hoisted_s'] * 1e3:6.1f} ms (speed-up "
                    f"{lev['alone_s'] / lev['hoisted_s']:.2f}x, loss gap {lev['hoisted_loss_gap']:.1e})"
                )
            if "bf16_s" in lev:
                line += (
                    f"; bf16 products {lev['bf16_s'] * 1e3:6.1f} ms (speed-up "
                    f"{lev['alone_s'] / lev['bf16_s']:.2f}x, loss gap {lev['bf16_loss_gap']:.1e})"
                )
            if "compiled_bf16_s" in lev:
                line += (
                    f"; compiled with bf16 products {lev['compiled_bf16_s'] * 1e3:6.1f} ms (speed-up "
                    f"{lev['alone_s'] / lev['compiled_bf16_s']:.2f}x)"
                )
            print(line)
        if not bf16_matmul_supported():
            print(
                "  (bf16 products not timed: they do not round to bfloat16 on this CPU, measured by arithmetic.bf16_products)"
            )
    if args.profile:
        _print_profiles(args.flows, data, out, epochs=args.epochs, repeats=args.repeats)
    return out


def _print_profiles(flows: list[str], data: torch.Tensor, out: dict, *, epochs: int, repeats: int) -> None:
    """``--profile``: :func:`step_profile` of each flow per matmul arithmetic, and the table at those step times
    and at their products and Adam alone (what no loop of these models can go below at these kernels' speed)."""
    print(
        f"Where a step of ours goes (torch.profiler, self CPU time; the total timed without it; medians of {repeats}):"
    )
    for matmul in ("fp32", "bf16") if bf16_matmul_supported() else ("fp32",):
        prof = {}
        for kind in flows:
            p = prof[kind] = step_profile(kind, data, matmul=matmul, epochs=epochs, repeats=repeats)
            out[kind].update({f"profile_{matmul}_{k}": v for k, v in p.items()})
            share = {k: p[f"{k}_s"] / p["total_s"] for k in ("products", "adam", "rest")}
            print(
                f"  {kind:8s} {matmul}: {p['total_s'] * 1e3:5.1f} ms/step = matrix products "
                f"{p['products_s'] * 1e3:5.1f} ({share['products']:.0%}) + fused Adam {p['adam_s'] * 1e3:4.1f} "
                f"({share['adam']:.0%}) + the rest {p['rest_s'] * 1e3:5.1f} ({share['rest']:.0%})"
            )
        if set(prof) == set(FLOWS):
            table = table_projection(
                {k: p["total_s"] for k, p in prof.items()}, {k: p["products_s"] + p["adam_s"] for k, p in prof.items()}
            )
            out[f"table_profile_{matmul}"] = table
            print(
                f"  Table 4's {table['runs']} runs on 2 cores with {matmul} products: {table['ours_min']:.0f} min at "
                f"these step times, {table['bound_min']:.0f} min if the rest cost nothing"
            )


if __name__ == "__main__":
    main()
