"""Print environment assignments under which torch on this machine computes with another float arithmetic.

``make test-arith`` runs the stored-result checks under them, so that CI proves, on one machine, what a
reader's machine of another CPU type will see. The first candidate whose fingerprint hash
(:func:`molli_utils.arithmetic.fingerprint`) differs from this machine's own is printed, as
``NAME=VALUE`` words for ``env``, followed by ``MOLLI_NATIVE_ARITH=<this machine's fingerprint>``
(tests/test_arithmetic.py checks under it that the arithmetic really changed):

1. ``MKL_ENABLE_INSTRUCTIONS=AVX2``: MKL's AVX2 kernels for the matrix products, what an AMD EPYC runs
   natively (on an Intel CPU with AVX-512 another rounding; on the AMD itself, none);
2. ``ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE``: ATen's and MKL's portable kernels.

Exits 1 with a message when none changes the arithmetic (e.g. a CPU where torch does not use MKL).
Usage: ``env $(python -m tools.other_arith) python -m pytest -m reproduction``
"""

from __future__ import annotations

import os
import subprocess
import sys

CANDIDATES = ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})
_CODE = "import torch; torch.set_num_threads(1); from molli_utils import arithmetic; print(arithmetic.fingerprint())"


def fingerprint(env: dict[str, str]) -> str:
    """The fingerprint of a fresh one-thread process with ``env`` added to this one's environment."""
    base = {
        k: v for k, v in os.environ.items() if k not in ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "MKL_CBWR")
    }
    out = subprocess.run([sys.executable, "-c", _CODE], env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    native = fingerprint({})
    for env in CANDIDATES:
        if fingerprint(env).split("/")[3] != native.split("/")[3]:
            print(" ".join(f"{k}={v}" for k, v in {**env, "MOLLI_NATIVE_ARITH": native}.items()))
            return 0
    print(f"error: none of {list(CANDIDATES)} changes this machine's arithmetic ({native})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
