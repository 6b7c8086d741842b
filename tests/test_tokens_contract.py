"""TokenSelector.select input checks: budget, allotment and tokens are validated before any
selector runs, with the one ParameterError template (never a silent truncation)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

import vidsieve
from vidsieve.errors import ParameterError
from vidsieve.tokens.base import TokenInput, TokenSelection, TokenSelector


class _Recorder(TokenSelector):
    """Keeps the first allotment[f] tokens of each frame and records the allotment it got."""

    def __init__(self) -> None:
        self._validate_params()
        self.calls: list[np.ndarray] = []

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        self.calls.append(allotment.copy())
        return TokenSelection(index=[torch.arange(int(k), dtype=torch.int64) for k in allotment],
                              embeddings=None, grid=inputs.grid)


def _tokens(f: int = 3, h: int = 2, w: int = 3, d: int = 4) -> torch.Tensor:
    return torch.randn(f, h, w, d, generator=torch.Generator().manual_seed(0))


BUDGET_MSG = r"The 'budget' parameter of TokenInput must be an int >= 1 or None\. Got {} instead\."


@pytest.mark.parametrize("budget", [2.5, 3.0, "abc", "5", True, False, 0, -4, np.float64(4.0), float("nan")])
def test_bad_budget_is_rejected_before_the_selector_runs(budget: Any) -> None:
    sel = _Recorder()
    with pytest.raises(ParameterError, match=BUDGET_MSG.format(re.escape(repr(budget)))):
        sel.select(TokenInput(tokens=_tokens(), budget=budget))
    assert sel.calls == []


@pytest.mark.parametrize("budget", [None, 1, 5, np.int64(5), np.int32(18), 10**9])
def test_int_budgets_numpy_ints_included_are_accepted(budget: Any) -> None:
    sel = _Recorder()
    out = sel.select(TokenInput(tokens=_tokens(), budget=budget))
    expected = 18 if budget is None else min(int(budget), 18)
    assert out.total == expected == int(sel.calls[0].sum())


@pytest.mark.parametrize(
    "allotment",
    [
        [2.5, 3, 4],  # was silently truncated to [2, 3, 4]
        np.array([1.0, 2.0, 3.5]),
        [1, -1, 2],
        np.array([1.0, float("nan"), 2.0]),
        np.array([1.0, float("inf"), 2.0]),
        np.array([True, False, True]),
        ["1", "2", "3"],
        [1, 2],  # wrong length
        [[1, 2, 3]],  # wrong shape
        [[1], [2, 3], [4]],  # ragged: numpy itself raises a bare ValueError
    ],
)
def test_bad_allotment_is_rejected(allotment: Any) -> None:
    sel = _Recorder()
    with pytest.raises(ParameterError, match=r"The 'allotment' parameter of TokenInput must be non-negative "
                                             r"integers of shape \(3,\)\. Got .* instead\."):
        sel.select(TokenInput(tokens=_tokens(), allotment=allotment))
    assert sel.calls == []


@pytest.mark.parametrize(
    "allotment",
    [[2, 3, 4], np.array([2, 3, 4], dtype=np.int32), np.array([2.0, 3.0, 4.0]), np.array([2, 3, 4], dtype=np.uint8),
     [0, 6, 1]],
)
def test_integer_valued_allotments_are_accepted(allotment: Any) -> None:
    sel = _Recorder()
    out = sel.select(TokenInput(tokens=_tokens(), allotment=allotment))
    assert out.counts.tolist() == [int(x) for x in np.asarray(allotment)]


def test_allotment_error_shows_the_values() -> None:
    with pytest.raises(ParameterError, match=r"Got \[2\.5, 3\.0, 4\.0\] instead"):
        _Recorder().select(TokenInput(tokens=_tokens(), allotment=[2.5, 3, 4]))
    with pytest.raises(ParameterError, match=r"Got shape \(2,\) instead"):
        _Recorder().select(TokenInput(tokens=_tokens(), allotment=[1, 2]))
    big = np.full(40, 0.5)
    with pytest.raises(ParameterError, match=r"Got an array of shape \(40,\) and dtype float64 instead"):
        _Recorder().select(TokenInput(tokens=_tokens(f=40), allotment=big))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_tokens_are_rejected(bad: float) -> None:
    tok = _tokens()
    tok[2, 1, 0, 3] = bad
    sel = _Recorder()
    with pytest.raises(ParameterError, match="TokenInput.tokens must be finite; frame 2 has NaN or inf"):
        sel.select(TokenInput(tokens=tok))
    assert sel.calls == []


def test_every_registered_selector_applies_the_checks() -> None:
    tok = _tokens(f=2, h=4, w=4, d=8)
    nan_tok = tok.clone()
    nan_tok[0, 0, 0, 0] = float("nan")
    for name in vidsieve.list_token_selectors():
        sel = vidsieve.create_token_selector(name)
        with pytest.raises(ParameterError, match="'budget' parameter"):
            sel.select(TokenInput(tokens=tok, budget=2.5))  # type: ignore[arg-type]
        with pytest.raises(ParameterError, match="'allotment' parameter"):
            sel.select(TokenInput(tokens=tok, allotment=np.array([2.5, 3.0])))
        with pytest.raises(ParameterError, match="must be finite"):
            sel.select(TokenInput(tokens=nan_tok))


@pytest.mark.parametrize(
    ("tokens", "match"),
    [(torch.zeros(2, 3, 3, 0), "width D=0"), (torch.zeros(2, 3, 3, 4, device="meta"), "meta tensor"),
     (torch.zeros(2, 3, 3, 4, dtype=torch.int64), "floating-point")],
)
def test_token_input_refuses_featureless_meta_and_integer_tokens(tokens, match):
    import vidsieve

    with pytest.raises(ParameterError, match=match):
        vidsieve.create_token_selector("none").select(TokenInput(tokens=tokens))
