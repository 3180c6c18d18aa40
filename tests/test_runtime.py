import pytest
import torch

from molli_utils.runtime import colab_install_spec, get_profile, matmul_precision, on_colab, pick_device


def test_profile_default_and_env_override(monkeypatch):
    import sys
    import types

    monkeypatch.delenv("MOLLI_PROFILE", raising=False)
    assert get_profile() == "full"
    assert get_profile(default="quick") == "quick"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert get_profile() == "colab"  # on Colab the session-sized profile is the default
    monkeypatch.setenv("MOLLI_PROFILE", "Quick ")
    assert get_profile() == "quick"
    monkeypatch.setenv("MOLLI_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*quick.*colab.*full"):
        get_profile()


def test_git_provenance_of_this_checkout_and_of_an_installed_copy(tmp_path):
    from molli_utils.runtime import git_commit, git_dirty

    assert git_commit() != "unknown" and git_dirty() in (True, False)
    installed = tmp_path / "lib" / "site-packages"
    installed.mkdir(parents=True)
    assert git_commit(installed) == "unknown" and git_dirty(installed) is None


def test_pick_device_explicit_env_and_auto(monkeypatch):
    monkeypatch.delenv("MOLLI_DEVICE", raising=False)
    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device()
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    monkeypatch.setenv("MOLLI_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu9")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_pick_device_cuda_without_gpu_says_how_to_fix():
    with pytest.raises(ValueError, match="Change runtime type"):
        pick_device("cuda")


def test_colab_helpers():
    assert on_colab() is False
    assert colab_install_spec("1.2.3").endswith("@v1.2.3")


def test_matmul_precision_is_restored_even_after_an_error(monkeypatch):
    """The setting is process-wide: a failing block must not leave later code computing in bf16. (The block is
    entered as on a CPU whose bf16 products are real: elsewhere matmul_precision refuses bf16 before it starts.)"""
    from molli_utils import runtime

    monkeypatch.setattr(runtime, "bf16_matmul_supported", lambda device="cpu": True)
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError):
        with matmul_precision("bf16"):
            assert torch.get_float32_matmul_precision() == "medium"
            raise RuntimeError("inside")
    assert torch.get_float32_matmul_precision() == before
