"""benchmarks.bench_vae_flops: the FLOP count of a VAE step is linear in the batch and beats a hand count."""

import torch

from benchmarks.bench_vae_flops import step_flops
from molli_utils.models.vae import make_vae


def test_step_flops_scale_with_the_batch_and_cover_the_convolutions():
    torch.manual_seed(0)
    model = make_vae("vae", (3, 32, 32), width=1 / 32).train()
    f2 = step_flops(model, torch.rand(2, 3, 32, 32))
    f4 = step_flops(model, torch.rand(4, 3, 32, 32))
    assert abs(f4 - 2 * f2) / f4 < 0.01
    # every weight is used at least once per image in the forward pass (2 FLOPs per multiply-add),
    # so forward + backward is more than 2 * parameters FLOPs per image
    params = sum(p.numel() for p in model.parameters())
    assert f2 > 2 * 2 * params
    assert all(p.grad is None for p in model.parameters())  # the count leaves no gradients behind


def test_flow_step_flops_scale_with_the_batch():
    from benchmarks.bench_vae_flops import flow_step_flops
    from molli_utils.models.image_flows import FlowSizes, make_image_flow

    torch.manual_seed(0)
    model = make_image_flow("glow", (3, 32, 32), FlowSizes(levels=3, depth=2, hidden=16))
    f2 = flow_step_flops(model, torch.rand(2, 3, 32, 32) * 2 - 1)
    f4 = flow_step_flops(model, torch.rand(4, 3, 32, 32) * 2 - 1)
    assert abs(f4 - 2 * f2) / f4 < 0.05 and f2 > 2 * 2 * sum(p.numel() for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
