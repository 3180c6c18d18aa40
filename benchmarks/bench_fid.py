"""FID evaluation in memory (molli_utils.fid) against PNG files + pytorch-fid's calculate_fid_given_paths.

Both paths use the SAME small injected feature extractor (a fixed random linear map of
the flattened image to 64 features), patched into pytorch-fid in place of its
InceptionV3, because the Inception weights cannot be downloaded on the offline CPU
machine. The measured ratio is therefore the I/O and pipeline overhead of the file
route (PNG encoding, writing, listing, decoding) -- NOT an Inception FID timing.
With Inception (~0.5 s per image on a CPU) the network dominates both routes.

"Generated" images: N patches of scikit-learn's sample photos (seed 1), quantised to
8 bits so that both routes see identical pixels; reference statistics (the 520 grid
patches) are precomputed for both (pytorch-fid reads them from an .npz).

Both routes end in the package's ``molli_utils.fid.frechet_distance`` (patched into pytorch-fid for
the file route): pytorch-fid 0.3.0's own ``calculate_frechet_distance`` passes
``scipy.linalg.sqrtm(..., disp=False)``, which scipy 1.18 removed; tests/test_fid.py checks that the
two distances agree where pytorch-fid's still runs.

Run:  make bench   (or: python -m benchmarks.bench_fid [--n 10000] [--repeats 3])
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

from molli_utils.data.images import sample_patches
from molli_utils.fid import activation_statistics, frechet_distance

DIMS = 64  # a key of pytorch-fid's InceptionV3.BLOCK_INDEX_BY_DIM, so calculate_fid_given_paths accepts it


class LinearFeatures(torch.nn.Module):
    """Fixed random linear map ``[B, 3, H, W] -> [B, DIMS]`` (NOT Inception)."""

    def __init__(self, pixels: int, seed: int = 0):
        super().__init__()
        weight = torch.randn(pixels, DIMS, generator=torch.Generator().manual_seed(seed)) / pixels**0.5
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight


def fake_inception(extractor: LinearFeatures) -> type:
    """A stand-in for ``pytorch_fid.fid_score.InceptionV3`` returning ``extractor``'s features as ``[B, D, 1, 1]``."""

    class FakeInceptionV3(torch.nn.Module):
        BLOCK_INDEX_BY_DIM = {DIMS: 0}

        def __init__(self, output_blocks, *args, **kwargs):
            super().__init__()
            self.extractor = extractor

        def forward(self, x):
            return [self.extractor(x)[:, :, None, None]]

    return FakeInceptionV3


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    """Images in [0, 1] as 8-bit PNG files ``000000.png``, ..."""
    array = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i, img in enumerate(array):
        Image.fromarray(img).save(folder / f"{i:06d}.png")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of generated images (32x32); issue #7: 10k")
    parser.add_argument("--repeats", type=int, default=3, help="timings per route (median reported)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from pytorch_fid import fid_score

    generated = (sample_patches(32, n=args.n, seed=1).images * 255).round() / 255
    reference = sample_patches(32)
    extractor = LinearFeatures(3 * 32 * 32).eval()
    ref_mu, ref_sigma = activation_statistics(reference, extractor, args.batch_size)
    print(f"NOT Inception: both routes use a random linear {DIMS}-feature extractor; timings = pipeline overhead only")
    print(f"generated: {args.n} x 3x32x32 ({reference.name}, seed 1); reference: {len(reference)} grid patches")

    def in_memory() -> float:
        return frechet_distance(*activation_statistics(generated, extractor, args.batch_size), ref_mu, ref_sigma)

    def via_files(tmp: Path) -> float:
        folder = tmp / "generated"
        folder.mkdir()
        write_pngs(generated, folder)
        with (
            mock.patch.object(fid_score, "InceptionV3", fake_inception(extractor)),
            mock.patch.object(fid_score, "tqdm", lambda x: x),
            mock.patch.object(fid_score, "calculate_frechet_distance", frechet_distance),
        ):
            return fid_score.calculate_fid_given_paths(
                [str(folder), str(tmp / "ref.npz")], args.batch_size, "cpu", DIMS, num_workers=0
            )

    times = {"in_memory": [], "png_files": []}
    values = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        values["in_memory"] = in_memory()
        times["in_memory"].append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "ref.npz", mu=ref_mu, sigma=ref_sigma)  # precomputed, outside the timing
            t0 = time.perf_counter()
            values["png_files"] = via_files(Path(tmp))
            times["png_files"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"median over {args.repeats}: in memory {med['in_memory'] * 1e3:.1f} ms, PNG files + calculate_fid_given_paths "
        f"{med['png_files'] * 1e3:.1f} ms, ratio {med['png_files'] / med['in_memory']:.1f}x"
    )
    print(
        f"distance (not FID): in memory {values['in_memory']:.6f}, via files {values['png_files']:.6f}, "
        f"|diff| {abs(values['in_memory'] - values['png_files']):.2e}"
    )
    return {**{f"{k}_s": v for k, v in med.items()}, "ratio": med["png_files"] / med["in_memory"]}


if __name__ == "__main__":
    main()
