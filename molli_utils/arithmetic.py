"""Which floating-point arithmetic a run computes with, and whether two runs share it.

Two machines that round the same operations identically re-run a stored result bit for bit;
two that do not (another SIMD kernel of a matrix product, another CPU type, another thread
count, another torch) drift apart, slowly at first and then, for an overfitting flow,
chaotically. The stored results record :func:`fingerprint` with every row (column ``arith``)
so that a re-run knows which case it is in (:mod:`molli_utils.experiments.reproduce`).

:func:`fingerprint` runs a small probe of the operations the book's training uses -- matrix
products of the UCI and toy shapes, forward and backward, the elementwise functions of the
flows, batch-norm statistics, reductions, one step of Adam in each of PyTorch's
implementations -- on ``device`` with the current torch thread count, and hashes the results
bitwise. Forcing another arithmetic changes it, e.g. (x86-64, torch's bundled MKL)::

    MKL_ENABLE_INSTRUCTIONS=AVX2 python -c "import molli_utils.arithmetic as a; print(a.fingerprint())"
    ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE python ...

The probe cannot cover every kernel, so an equal fingerprint is strong evidence, not proof,
of equal rounding; an unequal one is proof of a difference (or of another torch, device or
thread count, which is recorded in clear in the fingerprint).
"""

from __future__ import annotations

import hashlib
from typing import Optional, Union

import torch

__all__ = ["fingerprint", "same", "describe", "bf16_products", "PROBE_VERSION"]

#: Bumped whenever the probe's operations change (the hash of one machine then changes too).
PROBE_VERSION = 1


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda:" + torch.cuda.get_device_name(device).replace(" ", "_")
    if device.type == "cpu":
        return "cpu:" + torch.backends.cpu.get_cpu_capability()
    return device.type


def _probe(device: torch.device) -> list[torch.Tensor]:
    """The results of the probed operations (float32 on ``device``), from fixed inputs."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    out: list[torch.Tensor] = []
    x, w1, w2, b = randn(100, 11), randn(11, 512) / 3, randn(512, 512) / 23, randn(512)
    h = torch.addmm(b, x, w1)
    z = torch.relu(h) @ w2
    out += [h, z, z.T @ h, h @ w2.T, torch.randn(256, 2, generator=g).to(device) @ randn(2, 64)]
    out += [
        f(z)
        for f in (torch.tanh, torch.sigmoid, torch.exp, torch.nn.functional.softplus, torch.nn.functional.leaky_relu)
    ]
    out += [
        torch.log1p(z.abs()),
        torch.log(z.abs() + 1e-3),
        torch.sqrt(z.abs()),
        z.sum(0),
        z.mean(),
        z.var(0),
        torch.logsumexp(z, 1),
        torch.nn.functional.batch_norm(z, None, None, training=True),
    ]
    # a tiny flow-like network, forward and backward
    net = torch.nn.Sequential(torch.nn.Linear(11, 64), torch.nn.Tanh(), torch.nn.Linear(64, 22)).to(device)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g).to(device) / 4)
    s, t = net(x).chunk(2, 1)
    loss = (torch.exp(s) * x + t).square().mean() - s.sum(1).mean()
    loss.backward()
    out += [loss.detach().reshape(1)] + [p.grad.clone() for p in net.parameters()]
    # one step of Adam (weight decay as in the UCI runs) in each implementation the experiments use
    for kw in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        params = [p.detach().clone().requires_grad_() for p in net.parameters()]
        for p, q in zip(params, net.parameters()):
            p.grad = q.grad.clone()
        try:
            opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-6, **kw)
        except (RuntimeError, ValueError):  # an implementation this device lacks
            continue
        opt.step()
        out += [p.detach() for p in params]
    return out


def fingerprint(device: Union[str, torch.device] = "cpu") -> str:
    """A short identifier of the arithmetic of this process on ``device``.

    ``torch<version>/<device>/<threads>t/<hash>``: the torch version, the device (``cpu:`` and
    torch's SIMD level, e.g. ``cpu:AVX512``, or ``cuda:`` and the GPU's name), the torch thread
    count, and ten hex digits of a SHA-1 over the probe's results. Takes about 50 ms on a CPU.
    Matrix products run at full float32 whatever the caller's precision setting.
    """
    device = torch.device(device)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        digest = hashlib.sha1(f"probe{PROBE_VERSION}".encode())
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's RNG untouched
            probed = _probe(device)
        for t in probed:
            digest.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    finally:
        torch.set_float32_matmul_precision(previous)
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    return f"torch{torch.__version__.split('+')[0]}/{_device_name(device)}/{threads}t/{digest.hexdigest()[:10]}"


def same(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two recorded fingerprints name the same arithmetic (an unrecorded one, empty or nan, never does)."""

    def known(f) -> bool:
        return isinstance(f, str) and f.count("/") == 3

    return known(a) and known(b) and a == b


def describe(a: Optional[str]) -> str:
    """A fingerprint in words, for a chapter's sentence: ``torch 2.14.1, cpu:AVX512, 1 thread, probe 726a3fbddb``."""
    if not (isinstance(a, str) and a.count("/") == 3):
        return "not recorded"
    version, device, threads, digest = a.split("/")
    n = int(threads.rstrip("t"))
    return (
        f"{version.replace('torch', 'torch ')}, {device}"
        + (f", {n} thread{'s' * (n != 1)}" if n else "")
        + f", probe {digest}"
    )


def bf16_products(device: Union[str, torch.device] = "cpu") -> bool:
    """Whether float32 products under ``torch.set_float32_matmul_precision("medium")`` really round their
    inputs to bfloat16 on ``device``.

    Measured, not inferred from CPU flags: a 64 x 256 x 256 product in that setting must be much
    closer to the product of the inputs rounded to bfloat16 than to the float32 product. Some CPUs
    with bf16 instructions (an AMD EPYC with AVX512-BF16; an Intel Xeon with AVX512-BF16 but no AMX)
    keep float32 there, or run another float32 kernel that changes only the last bits.
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 256, generator=g).to(device), torch.randn(256, 256, generator=g).to(device)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        exact = a @ b
        rounded = a.bfloat16().float() @ b.bfloat16().float()
        torch.set_float32_matmul_precision("medium")
        fast = a @ b
    finally:
        torch.set_float32_matmul_precision(previous)
    to_bf16, to_fp32 = float((fast - rounded).abs().max()), float((fast - exact).abs().max())
    return to_bf16 < 0.1 * to_fp32
