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
