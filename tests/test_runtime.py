import pytest
import torch

from molli_utils.runtime import colab_install_spec, get_profile, on_colab, pick_device


def test_profile_default_and_env_override(monkeypatch):
    monkeypatch.delenv("MOLLI_PROFILE", raising=False)
    assert get_profile() == "full"
    assert get_profile(default="quick") == "quick"
    monkeypatch.setenv("MOLLI_PROFILE", "Quick ")
    assert get_profile() == "quick"
    monkeypatch.setenv("MOLLI_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*quick.*full"):
        get_profile()


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


def test_results_source_prefers_the_local_file_then_the_repository(tmp_path):
    from molli_utils.runtime import REPOSITORY, results_source

    (tmp_path / "uci.csv").write_text("a\n1\n")
    assert results_source("uci.csv", tmp_path) == str(tmp_path / "uci.csv")
    url = results_source("uci.csv", tmp_path / "absent", version="9.9.9")
    assert url == REPOSITORY.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/v9.9.9/book/results/uci.csv"
