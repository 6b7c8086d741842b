"""The hf_overrides["vidsieve"] entry of the vLLM plugin's model subclasses (no vLLM needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vidsieve.errors import ParameterError, UnknownNameError
from vidsieve.tokens.aot import AOTSelector
from vidsieve.vllm.settings import vidsieve_settings


def test_absent_means_upstream():
    assert vidsieve_settings(SimpleNamespace()) is None


def test_selector_params_and_allotment():
    sel, allot = vidsieve_settings(SimpleNamespace(vidsieve={"token_selector": "aot", "params": {"mode": "paper"}}))
    assert isinstance(sel, AOTSelector) and sel.mode == "paper" and allot == "even"
    _, allot = vidsieve_settings(SimpleNamespace(vidsieve={"token_selector": "resize", "allotment": "first-full"}))
    assert allot == "first-full"


@pytest.mark.parametrize(
    "bad, err, match",
    [
        ("ktv-tokens", ParameterError, "must be a dict"),
        ({"selector": "resize"}, ParameterError, "token_selector"),
        ({"token_selector": "resize", "param": {}}, ParameterError, "unknown keys"),
        ({"token_selector": "resize", "params": [1]}, ParameterError, "params"),
        ({"token_selector": "resize", "allotment": [3, 3]}, ParameterError, "allotment"),
        ({"token_selector": "nope"}, UnknownNameError, "nope"),
        ({"token_selector": "aot", "params": {"mode": "x"}}, ParameterError, "mode"),
    ],
)
def test_bad_entries_one_line(bad, err, match):
    with pytest.raises(err, match=match) as e:
        vidsieve_settings(SimpleNamespace(vidsieve=bad))
    assert "\n" not in str(e.value)
