"""quota-assign: QuoTA's assigners and quota allotment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsieve.testing import check_token_selector, make_token_input
from vidsieve.tokens.base import TokenInput
from vidsieve.tokens.quota_assign import (
    QuotaAssignSelector,
    linspace_cells,
    quota_allotment,
    tome_merge,
)


@pytest.mark.parametrize("assigner", ["bilinear", "pool", "linspace", "tome"])
def test_common_checks(assigner: str) -> None:
    check_token_selector(QuotaAssignSelector(assigner=assigner))


def test_quota_allotment_caps_and_redistributes() -> None:
    # weights (100 p)^2 = 10000, 100, 100: raw shares 294.1, 2.9, 2.9; frame 0 capped at 196,
    # its 98 freed tokens go to the others in proportion to their weights
    a = quota_allotment(np.array([1.0, 0.1, 0.1]), 300, 196)
    assert a.tolist() == [196, 52, 52]
    b = quota_allotment(np.array([0.9, 0.3, 0.0]), 100, 196)
    assert b.tolist() == [90, 10, 0]  # 8100 : 900 : 0; a zero score drops the frame
    assert quota_allotment(np.array([0.5, 0.5]), 1000, 196).tolist() == [196, 196]


def test_quota_allotment_feeds_the_selector() -> None:
    inp = make_token_input(3, 14, 14, 8, seed=2)
    allot = quota_allotment(np.array([1.0, 0.1, 0.1]), 300, 196)
    s = QuotaAssignSelector().select(TokenInput(tokens=inp.tokens, allotment=allot))
    assert s.extras["grids"] == [(14, 14), (7, 7), (7, 7)]
    assert s.counts.tolist() == [196, 49, 49]


def test_pool_is_adaptive_average() -> None:
    tokens = torch.arange(2 * 4 * 4 * 1, dtype=torch.float32).reshape(2, 4, 4, 1)
    s = QuotaAssignSelector(assigner="pool").select(TokenInput(tokens=tokens, allotment=np.array([4, 6])))
    want = F.adaptive_avg_pool2d(tokens[:1].permute(0, 3, 1, 2), (2, 2)).reshape(4, 1)
    torch.testing.assert_close(s.embeddings[0], want)
    assert s.extras["grids"] == [(2, 2), (2, 3)]


def test_linspace_subset() -> None:
    assert linspace_cells(4, 4, 2, 2).tolist() == [0, 3, 12, 15]
    assert linspace_cells(5, 5, 3, 3).tolist() == [0, 2, 4, 10, 12, 14, 20, 22, 24]
    s = QuotaAssignSelector(assigner="linspace").select(
        TokenInput(tokens=torch.randn(1, 5, 5, 2), allotment=np.array([10]))
    )
    assert s.embeddings is None and s.index[0].tolist() == [0, 2, 4, 10, 12, 14, 20, 22, 24]


def test_tome_merges_similar_pairs_with_size_weighted_means() -> None:
    # raster A = {0, 2}, B = {1, 3}; token 0 ~ 1 and 2 ~ 3: one round merges both pairs
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 1.0]])[None]
    alive, merged, size = tome_merge(x, torch.tensor([2]))
    assert alive[0].tolist() == [False, True, False, True]
    torch.testing.assert_close(merged[0, 1], (x[0, 0] + x[0, 1]) / 2)
    torch.testing.assert_close(merged[0, 3], (x[0, 2] + x[0, 3]) / 2)
    assert size[0, [1, 3]].tolist() == [2.0, 2.0]
    # down to one token: everything averaged (sizes carried across rounds)
    alive, merged, size = tome_merge(x, torch.tensor([1]))
    assert int(alive.sum()) == 1
    torch.testing.assert_close(merged[0][alive[0]][0], x[0].mean(0))
    assert float(size[0][alive[0]][0]) == 4.0


def test_tome_exact_counts_and_mass() -> None:
    inp = make_token_input(3, 6, 5, 8, allotment=[1, 7, 29], seed=4)
    s = QuotaAssignSelector(assigner="tome").select(inp)
    assert s.counts.tolist() == [1, 7, 29]
    assert [float(m.sum()) for m in s.extras["merge_size"]] == [30.0, 30.0, 30.0]


def test_bilinear_assigner_equals_resize() -> None:
    from vidsieve.tokens.resize import ResizeTokenSelector

    inp = make_token_input(3, 6, 5, 8, allotment=[10, 4, 30], seed=6)
    a = QuotaAssignSelector().select(inp)
    b = ResizeTokenSelector().select(inp)
    for ia, ib, ea, eb in zip(a.index, b.index, a.embeddings, b.embeddings):
        assert torch.equal(ia, ib) and torch.equal(ea, eb)
