"""The common check suite over EVERY registered selector, and proof the checks can fail."""

import numpy as np
import pytest

import vidsieve
from vidsieve.errors import ContractError
from vidsieve.selectors.base import FrameSelector, SelectOutput
from vidsieve.testing import (
    check_selector,
    check_token_selector,
    frame_selector_checks,
    token_selector_checks,
)
from vidsieve.tokens.base import TokenSelection, TokenSelector


@pytest.mark.parametrize("check", list(frame_selector_checks()))
@pytest.mark.parametrize("name", vidsieve.list_selectors())
def test_frame_selector_contract(name, check):
    frame_selector_checks()[check](vidsieve.create_selector(name))


@pytest.mark.parametrize("check", list(token_selector_checks()))
@pytest.mark.parametrize("name", vidsieve.list_token_selectors())
def test_token_selector_contract(name, check):
    token_selector_checks()[check](vidsieve.create_token_selector(name))


class _Random(FrameSelector):
    name = "random-test"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        return SelectOutput(rows=np.sort(np.random.default_rng().choice(len(features), k, replace=False)))


class _Mutating(FrameSelector):
    name = "mutating-test"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        features.embeddings[0] += 1.0
        return SelectOutput(rows=np.arange(k))


class _Short(FrameSelector):
    name = "short-test"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        return SelectOutput(rows=np.arange(max(k - 1, 1)))


def test_checks_catch_nondeterminism():
    with pytest.raises(AssertionError, match="not deterministic"):
        check_selector(_Random())


def test_checks_catch_mutation():
    with pytest.raises(AssertionError, match="mutated"):
        check_selector(_Mutating())


def test_contract_catches_wrong_count():
    with pytest.raises(ContractError, match="budget asks for"):
        check_selector(_Short())


class _DropsToken(TokenSelector):
    name = "drops-test"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, inputs, allotment):
        import torch

        idx = [torch.arange(max(int(a) - 1, 0)) if a == inputs.tokens_per_frame else torch.arange(int(a)) for a in allotment]
        return TokenSelection(index=idx, embeddings=None, grid=inputs.grid)


def test_token_checks_catch_broken_identity():
    with pytest.raises((AssertionError, ContractError)):
        check_token_selector(_DropsToken())


class _GreedyTokens(FrameSelector):
    name = "greedy-tokens-test"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        return SelectOutput(rows=np.arange(k), frame_tokens=np.full(k, 10**6))


def test_contract_catches_token_overspend():
    with pytest.raises(ContractError, match="token budget"):
        _GreedyTokens().select(make_features_(), budget=vidsieve.Budget(frames=4, tokens=100))
    with pytest.raises(ContractError):
        check_selector(_GreedyTokens())


def make_features_():
    from vidsieve.testing import make_features

    return make_features(t=10)


class _LooseParam(FrameSelector):
    """Declares a constraint it never enforces (no _validate_params call)."""

    name = "loose-test"
    _parameter_constraints = {"k": [vidsieve.params.Int(ge=1)]}

    def __init__(self, *, k: int = 2) -> None:
        self.k = k

    def _select(self, features, *, k, budget, query):
        return SelectOutput(rows=np.arange(k))


class _FakeContentFree(FrameSelector):
    """Says it reads nothing but looks at the embeddings."""

    name = "fake-content-free-test"
    reads = "nothing"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        if features.embeddings.shape[1] == 0:
            return SelectOutput(rows=np.arange(k))
        return SelectOutput(rows=np.sort(np.argsort(features.embeddings[:, 0])[:k]))


def test_checks_catch_unenforced_parameter_constraint():
    with pytest.raises(AssertionError, match="violates its declared constraint but was accepted"):
        frame_selector_checks()["parameter_constraints"](_LooseParam())


def test_checks_catch_false_reads_declaration():
    with pytest.raises(AssertionError, match="reads='nothing' but selects differently"):
        frame_selector_checks()["reads"](_FakeContentFree())
