"""molli_utils.arithmetic: the fingerprint sees a change of rounding and nothing else; bf16 is what it says."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from molli_utils import arithmetic
from molli_utils.runtime import matmul_precision

#: Environment variables that force another float arithmetic on an x86-64 CPU (torch's bundled MKL and ATen):
#: the most portable, conservative kernels of both (see ../shared/tools/arith_probe.py).
OTHER = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def _fingerprint_in_subprocess(env: dict[str, str]) -> str:
    code = "import torch; torch.set_num_threads(1); from molli_utils import arithmetic; print(arithmetic.fingerprint())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_the_fingerprint_names_torch_the_device_and_the_threads_and_is_stable(one_thread):
    a, b = arithmetic.fingerprint(), arithmetic.fingerprint()
    assert a == b and arithmetic.same(a, b)
    version, device, threads, digest = a.split("/")
    assert version == "torch" + torch.__version__.split("+")[0]
    assert device == "cpu:" + torch.backends.cpu.get_cpu_capability()
    assert threads == "1t" and len(digest) == 10 and int(digest, 16) >= 0
    assert arithmetic.describe(a).endswith(f", 1 thread, probe {digest}")


def test_the_fingerprint_leaves_the_callers_random_numbers_and_precision_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    torch.set_float32_matmul_precision("medium")
    try:
        arithmetic.fingerprint()
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision("highest")
    assert torch.equal(torch.rand(4), expected)


def test_the_fingerprint_sees_one_unit_in_the_last_place(monkeypatch):
    """A probe result that moves by one ulp (what another kernel does) gives another hash."""
    base = arithmetic.fingerprint()
    real = arithmetic._probe

    def nudged(device):
        out = real(device)
        out[1] = out[1].clone()
        out[1][0, 0] = torch.nextafter(out[1][0, 0], torch.tensor(float("inf")))
        return out

    monkeypatch.setattr(arithmetic, "_probe", nudged)
    assert arithmetic.fingerprint() != base


def test_the_thread_count_is_part_of_the_arithmetic():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = arithmetic.fingerprint()
        torch.set_num_threads(2)
        two = arithmetic.fingerprint()
    finally:
        torch.set_num_threads(threads)
    assert one.split("/")[2] == "1t" and two.split("/")[2] == "2t" and not arithmetic.same(one, two)


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="the forcing variables are x86-64 MKL/ATen ones"
)
@pytest.mark.slow
def test_a_forced_other_arithmetic_changes_the_hash_not_only_the_label():
    native, forced = _fingerprint_in_subprocess({}), _fingerprint_in_subprocess(OTHER)
    assert forced.split("/")[1] == "cpu:DEFAULT"
    assert forced.split("/")[3] != native.split("/")[3], (native, forced)


def test_an_unrecorded_arithmetic_is_never_the_same():
    f = arithmetic.fingerprint()
    assert not arithmetic.same("", f) and not arithmetic.same(float("nan"), f) and not arithmetic.same(None, None)
    assert not arithmetic.same("", "")
    assert arithmetic.describe("") == "not recorded" and arithmetic.describe(float("nan")) == "not recorded"


def test_bf16_is_accepted_exactly_where_it_rounds_to_bf16():
    """``matmul="bf16"`` runs only where the products really change by bfloat16 rounding; elsewhere it is refused
    (on an AMD EPYC with AVX512-BF16 PyTorch kept float32, and an Intel Xeon without AMX ran another float32
    kernel that moved only the last bits: a row labelled bf16 would have been fp32 arithmetic)."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(32, 128, generator=g), torch.randn(128, 64, generator=g)
    exact = a @ b
    if arithmetic.bf16_products():
        with matmul_precision("bf16"):
            fast = a @ b
        rel = float(((fast - exact).abs() / exact.abs().clamp_min(1)).max())
        assert 1e-4 < rel < 5e-2  # bfloat16 rounding of the inputs: 8 significant bits
    else:
        with pytest.raises(ValueError, match="matmul='fp32'"):
            with matmul_precision("bf16"):
                pass
    assert torch.get_float32_matmul_precision() == "highest"


def test_the_bf16_probe_tells_bf16_from_a_kernel_change(monkeypatch):
    """The probe's rule itself: a product off by bf16 rounding passes, one off by float32 rounding does not."""
    real_matmul = torch.Tensor.__matmul__

    def fake(kind):
        def mm(x, y):
            if torch.get_float32_matmul_precision() != "medium":
                return real_matmul(x, y)
            if kind == "bf16":
                return real_matmul(x.bfloat16().float(), y.bfloat16().float())
            return real_matmul(x, y) * (1 + 2**-23)  # another float32 kernel: last bits only

        return mm

    for kind, expected in (("bf16", True), ("fp32-kernel", False)):
        monkeypatch.setattr(torch.Tensor, "__matmul__", fake(kind))
        assert arithmetic.bf16_products() is expected, kind


@pytest.mark.reproduction
@pytest.mark.skipif(
    not os.environ.get("MOLLI_NATIVE_ARITH"), reason="only under make test-arith (tools/other_arith.py)"
)
def test_make_test_arith_really_runs_on_another_arithmetic(one_thread):
    """``make test-arith`` sets MOLLI_NATIVE_ARITH to the machine's own fingerprint: the checks that follow
    it must run on another one, or they prove nothing."""
    native, here = os.environ["MOLLI_NATIVE_ARITH"], arithmetic.fingerprint()
    assert here.split("/")[3] != native.split("/")[3], (native, here)


@pytest.mark.slow
def test_other_arith_prints_a_forcing_that_changes_the_hash():
    out = subprocess.run(
        [sys.executable, "-m", "tools.other_arith"],
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the forcing variables are x86-64 MKL/ATen ones")
    assert out.returncode == 0, out.stderr
    words = dict(w.split("=", 1) for w in out.stdout.split())
    native = words.pop("MOLLI_NATIVE_ARITH")
    assert words and set(words) <= {"MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "MKL_CBWR"}
    assert _fingerprint_in_subprocess(words).split("/")[3] != native.split("/")[3]
