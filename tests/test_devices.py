"""resolve_device: "auto", CPU, bad strings, and CUDA asked for where there is none."""

import numpy as np
import pytest
import torch

import vidsieve
from vidsieve import Budget, FrameFeatures, ParameterError
from vidsieve.devices import resolve_device


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has no CUDA (also on a GPU machine)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(None) == torch.device(expected)
    assert resolve_device(" AUTO ") == torch.device(expected)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu() -> None:
    dev = resolve_device("cpu")
    assert isinstance(dev, torch.device) and dev.type == "cpu"
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "cpu:0:1"])
def test_not_a_device(bad: str) -> None:
    with pytest.raises(ParameterError, match="is not a device") as e:
        resolve_device(bad)
    assert "'auto', 'cpu', 'cuda' or 'cuda:N'" in str(e.value)


def test_not_a_string() -> None:
    with pytest.raises(ParameterError, match="must be a string"):
        resolve_device(0)  # type: ignore[arg-type]


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_unavailable(no_cuda: None, asked: str) -> None:
    with pytest.raises(ParameterError, match="CUDA is not available") as e:
        resolve_device(asked, owner="Thing")
    msg = str(e.value)
    assert msg.startswith("Thing: ") and repr(asked) in msg and "device='cpu'" in msg


def test_cuda_index_beyond_device_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ParameterError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


def _features(t: int = 12, d: int = 16) -> FrameFeatures:
    return FrameFeatures.from_array(np.random.default_rng(0).normal(size=(t, d)).astype(np.float32), fps=1.0)


def test_peek_cuda_without_cuda_is_a_parameter_error(no_cuda: None) -> None:
    sel = vidsieve.create_selector("peek", device="cuda")  # constructing is fine: checked when used
    with pytest.raises(ParameterError, match="PeekSelector: device 'cuda' was asked for but CUDA is not available"):
        sel.select(_features(), budget=Budget(frames=4))


def test_peek_cpu_and_auto_select(no_cuda: None) -> None:
    f = _features()
    a = vidsieve.create_selector("peek", device="cpu").select(f, budget=Budget(frames=4))
    b = vidsieve.create_selector("peek").select(f, budget=Budget(frames=4))
    assert len(a.indices) == 4 and np.array_equal(a.indices, b.indices)


def test_hf_encoder_cuda_without_cuda_is_a_parameter_error(no_cuda: None) -> None:
    pytest.importorskip("transformers")
    enc = vidsieve.create_encoder("hf", model="no/such-model", device="cuda", local_files_only=True)
    with pytest.raises(ParameterError, match="HFEncoder: device 'cuda' was asked for"):
        enc.encode(np.zeros((1, 8, 8, 3), dtype=np.uint8))


def test_transnetv2_cuda_without_cuda_is_a_parameter_error(no_cuda: None, scene_video) -> None:
    from vidsieve.scenes import TransNetV2SceneDetector

    det = TransNetV2SceneDetector(device="cuda")
    with pytest.raises(ParameterError, match="TransNetV2SceneDetector: device 'cuda'"):
        det.predict(scene_video.path, np.arange(10))
