import pytest

import vidsieve
from vidsieve import UnknownNameError
from vidsieve.registry import Registry
from vidsieve.selectors.base import FrameSelector


def test_unknown_selector_lists_available():
    with pytest.raises(UnknownNameError) as e:
        vidsieve.create_selector("nope")
    msg = str(e.value)
    assert msg.startswith("Unknown frame selector 'nope'. Available: ")
    assert "uniform" in msg


def test_unknown_parameter_names_the_parameters():
    with pytest.raises(UnknownNameError, match="Its parameters: fps"):
        vidsieve.create_selector("uniform-fps", rate=2)


def test_list_pattern():
    assert vidsieve.list_selectors("uniform*")[:1] == ["uniform"]
    assert all(n.startswith("uniform") for n in vidsieve.list_selectors("uniform*"))
    assert vidsieve.list_selectors("zzz*") == []


def test_builtin_encoders_and_token_selectors_registered():
    assert {"pixel", "hf"} <= set(vidsieve.list_encoders())
    assert "none" in vidsieve.list_token_selectors()


def test_duplicate_registration_rejected():
    reg: Registry = Registry("thing")

    @reg.register("a")
    class A(FrameSelector):
        pass

    with pytest.raises(ValueError, match="already registered"):

        @reg.register("a")
        class B(FrameSelector):
            pass


def test_third_party_selector_registers_and_passes_checks():
    import numpy as np

    from vidsieve.selectors.base import SelectOutput
    from vidsieve.testing import check_selector

    @vidsieve.register_selector("test-last-frames", "Picks the last k candidates.")
    class LastFrames(FrameSelector):
        def __init__(self) -> None:
            self._validate_params()

        def _select(self, features, *, k, budget, query):
            return SelectOutput(rows=np.arange(len(features) - k, len(features)))

    assert "test-last-frames" in vidsieve.list_selectors()
    check_selector(vidsieve.create_selector("test-last-frames"))
    from vidsieve.registry import FRAME_SELECTORS

    FRAME_SELECTORS._items.pop("test-last-frames")


def test_one_broken_module_does_not_empty_the_registry(monkeypatch):
    """A module that fails to import is reported and retried; the others stay usable."""
    import importlib

    import vidsieve.registry as reg

    real = importlib.import_module
    broken = {"on": True}

    def flaky(name, *a, **k):  # type: ignore[no-untyped-def]
        if name == "vidsieve.selectors.ktv" and broken["on"]:
            raise ImportError("simulated broken dependency")
        return real(name, *a, **k)

    monkeypatch.setattr(reg, "_loaded", False)
    monkeypatch.setattr(reg.importlib, "import_module", flaky)
    assert "uniform" in vidsieve.list_selectors()  # the other modules registered
    assert "vidsieve.selectors.ktv" in reg.import_failures and not reg._loaded
    with pytest.raises(UnknownNameError, match="failed to import: vidsieve.selectors.ktv: ImportError"):
        reg.FRAME_SELECTORS.get("surely-not-registered")
    vidsieve.create_selector("uniform")  # still works in the same process
    broken["on"] = False
    assert "ktv" in vidsieve.list_selectors()  # retried: loaded now
    assert reg._loaded and not reg.import_failures


def test_type_errors_inside_a_constructor_are_not_rewritten():
    reg: Registry = Registry("thing")

    @reg.register("boom")
    class Boom(FrameSelector):
        def __init__(self) -> None:
            raise TypeError("missing 1 required positional argument: 'x' (a bug inside)")

    with pytest.raises(TypeError, match="a bug inside"):
        reg.create("boom")
    with pytest.raises(UnknownNameError, match="unknown parameter"):
        reg.create("boom", nope=1)
