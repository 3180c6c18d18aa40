"""Time per epoch of the book's MAF (normflows + BatchNormFlow) against a plain-PyTorch MAF of the same size.

Both: 5 blocks of a MADE with two hidden layers of 512 tanh units on the 11 red-wine
variables, batch normalisation and an order reversal after each block, Adam (lr 1e-4),
batch 100, one epoch of the 1,296 training rows (13 steps). The plain model writes the
MAF equations directly (u = (x - m) exp(-a)); ours is ``molli_utils.models.tabular.tabular_flow("maf", 11)``.
Also timed: the validation + test log-likelihood evaluation that ``molli_utils.experiments.uci.run`` does each
epoch, as a fraction of the epoch.

Run:  make bench      (or: python -m benchmarks.bench_uci --help)

Prints medians over alternating repeats measured in one run, and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from molli_utils.models.tabular import count_parameters, tabular_flow
from molli_utils.experiments.uci import mean_loglik


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class PlainMADE(nn.Module):
    """MADE (Germain et al., 2015) with sequential degrees: outputs m, a for u = (x - m) exp(-a)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        d_in = torch.arange(1, dim + 1)
        d_hid = torch.arange(hidden) % max(1, dim - 1) + 1
        d_out = torch.cat([d_in, d_in])
        self.net = nn.Sequential(
            _MaskedLinear(dim, hidden, (d_hid[:, None] >= d_in[None]).float()), nn.Tanh(),
            _MaskedLinear(hidden, hidden, (d_hid[:, None] >= d_hid[None]).float()), nn.Tanh(),
            _MaskedLinear(hidden, 2 * dim, (d_out[:, None] > d_hid[None]).float()),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, a = self.net(x).chunk(2, dim=1)
        return (x - m) * torch.exp(-a), -a.sum(1)


class PlainMAF(nn.Module):
    """MADE -> batch norm -> reverse, ``layers`` times, on a standard normal base."""

    def __init__(self, dim: int, hidden: int = 512, layers: int = 5) -> None:
        super().__init__()
        self.made = nn.ModuleList(PlainMADE(dim, hidden) for _ in range(layers))
        self.log_gamma = nn.Parameter(torch.zeros(layers, dim))
        self.beta = nn.Parameter(torch.zeros(layers, dim))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_det = torch.zeros(len(x))
        for i, made in enumerate(self.made):
            x, ld = made(x)
            mean, var = x.mean(0), x.var(0, unbiased=False) + 1e-5
            x = (x - mean) * torch.rsqrt(var) * self.log_gamma[i].exp() + self.beta[i]
            log_det = log_det + ld + (self.log_gamma[i] - 0.5 * var.log()).sum()
            x = x.flip(1)
        return log_det - 0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * torch.log(torch.tensor(2 * torch.pi))


def _epoch(model, opt, data: torch.Tensor, loss_fn, batch: int, gen: torch.Generator) -> None:
    for idx in torch.randperm(len(data), generator=gen).split(batch):
        opt.zero_grad(set_to_none=True)
        loss_fn(model, data[idx]).backward()
        opt.step()


def _data(n: int = 1296, dim: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    try:
        from molli_utils.data.uci import load_uci

        d = load_uci("redwine", download=False)
        return torch.from_numpy(d.train), torch.from_numpy(d.val), torch.from_numpy(d.test), "red wine (UCI)"
    except (FileNotFoundError, ValueError):
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, dim, generator=g), torch.randn(144, dim, generator=g), torch.randn(159, dim, generator=g), \
            "random normal data of the red-wine shape (UCI arrays not found: set MOLLI_DATA)"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="epochs timed per model (median reported)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, val, test, source = _data()
    torch.manual_seed(0)
    ours, plain = tabular_flow("maf", 11, seed=0), PlainMAF(11)
    models = {
        "molli_utils MAF": (ours, lambda m, x: m.forward_kld(x)),
        "plain-PyTorch MAF": (plain, lambda m, x: -m.log_prob(x).mean()),
    }
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-4, weight_decay=1e-6) for name, (m, _) in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    evals: list[float] = []
    gen = torch.Generator().manual_seed(0)
    for rep in range(args.repeats + 1):  # the first round warms up and is dropped
        for name, (model, loss_fn) in models.items():
            t0 = time.perf_counter()
            _epoch(model, opts[name], train, loss_fn, 100, gen)
            if rep:
                times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mean_loglik(ours, val), mean_loglik(ours, test)
        if rep:
            evals.append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    eval_med = statistics.median(evals)
    print(f"UCI MAF epoch ({source}: {len(train)} rows, batch 100, {args.threads} thread(s)), "
          f"median of {args.repeats} alternating epochs:")  # fmt: skip
    for name, (model, _) in models.items():
        print(f"  {name:18s} {med[name] * 1e3:8.1f} ms/epoch   ({count_parameters(model):,} parameters)")
    ratio = med["molli_utils MAF"] / med["plain-PyTorch MAF"]
    print(f"  ratio ours / plain: {ratio:.2f}")
    print(f"  validation + test log-likelihood ({len(val)} + {len(test)} rows): {eval_med * 1e3:.1f} ms "
          f"= {100 * eval_med / med['molli_utils MAF']:.1f}% of an epoch")  # fmt: skip
    return {"ours_s": med["molli_utils MAF"], "plain_s": med["plain-PyTorch MAF"], "ratio": ratio, "eval_s": eval_med}


if __name__ == "__main__":
    main()
