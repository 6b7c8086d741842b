"""resize and f2c-resolution: spatial downsampling of token grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsieve.errors import ParameterError
from vidsieve.testing import check_token_selector
from vidsieve.tokens._common import nearest_cells, target_grid
from vidsieve.tokens.base import TokenInput
from vidsieve.tokens.resize import F2CResolutionSelector, ResizeTokenSelector, downscaled_grid


@pytest.mark.parametrize("mode", ["bilinear", "area"])
def test_common_checks(mode: str) -> None:
    check_token_selector(ResizeTokenSelector(mode=mode))
    check_token_selector(F2CResolutionSelector(mode=mode))


@pytest.mark.parametrize("mode", ["bilinear", "area"])
def test_2x2_to_1x1_exact(mode: str) -> None:
    tokens = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [6.0, 60.0]]).reshape(1, 2, 2, 2)
    s = ResizeTokenSelector(mode=mode).select(TokenInput(tokens=tokens, allotment=np.array([1])))
    assert s.embeddings is not None
    torch.testing.assert_close(s.embeddings[0], torch.tensor([[3.0, 30.0]]))
    assert s.index[0].tolist() == [3]  # cell containing the output centre (1, 1)


def test_bilinear_matches_interpolate_and_positions() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 6, 6, 3, generator=g)
    s = ResizeTokenSelector().select(TokenInput(tokens=tokens, allotment=np.array([9, 36])))
    want = F.interpolate(tokens[:1].permute(0, 3, 1, 2), size=(3, 3), mode="bilinear", align_corners=False)
    torch.testing.assert_close(s.embeddings[0], want.permute(0, 2, 3, 1).reshape(9, 3))
    assert s.index[0].tolist() == [7, 9, 11, 19, 21, 23, 31, 33, 35]
    assert torch.equal(s.embeddings[1], tokens[1].reshape(36, 3))  # full frame untouched


def test_target_grid_rule() -> None:
    assert target_grid(10, 27, 27) == (3, 3)
    assert target_grid(12, 27, 27) == (3, 4)
    assert target_grid(15, 27, 27) == (3, 4)  # QuoTA: one side +1 only
    assert target_grid(196, 27, 27) == (14, 14)
    assert target_grid(210, 27, 27) == (14, 15)
    assert target_grid(729, 27, 27) == (27, 27)
    assert target_grid(0, 27, 27) == (0, 0)
    assert target_grid(10, 1, 30) == (1, 10)
    assert target_grid(12, 6, 12) == (2, 5)  # aspect 2 x 4, then the single +1 on the width
    for n in range(1, 31):
        hh, ww = target_grid(n, 6, 5)
        assert 1 <= hh <= 6 and 1 <= ww <= 5 and hh * ww <= n


def test_nearest_cells_unique_sorted() -> None:
    for h, w in ((27, 27), (6, 5), (1, 7)):
        for hh in range(1, h + 1):
            for ww in range(1, w + 1):
                idx = nearest_cells(h, w, hh, ww)
                assert idx.numel() == hh * ww and bool((idx[1:] > idx[:-1]).all())


def test_f2c_grid_sizes() -> None:
    assert downscaled_grid(27, 27, 2.0) == (14, 14)
    assert downscaled_grid(27, 27, 1.5) == (18, 18)
    assert downscaled_grid(27, 27, 1.0) == (27, 27)
    assert downscaled_grid(27, 27, 0.5) == (27, 27)  # never upsampled
    assert downscaled_grid(24, 32, 2.0) == (12, 16)
    tokens = torch.randn(4, 27, 27, 4)
    inp = TokenInput(tokens=tokens, allotment=np.array([729, 729, 100, 729]),
                     downscale=np.array([1.0, 2.0, 2.0, 1.5]))
    s = F2CResolutionSelector().select(inp)
    assert s.extras["grids"] == [(27, 27), (14, 14), (10, 10), (18, 18)]
    assert s.counts.tolist() == [729, 196, 100, 324]
    assert torch.equal(s.embeddings[0], tokens[0].reshape(729, 4))


def test_f2c_bad_downscale() -> None:
    inp = TokenInput(tokens=torch.randn(2, 4, 4, 2), downscale=np.array([1.0, 0.0]))
    with pytest.raises(ParameterError, match="downscale"):
        F2CResolutionSelector().select(inp)


def test_f2c_without_downscale_is_resize() -> None:
    inp = TokenInput(tokens=torch.randn(3, 6, 5, 4), allotment=np.array([7, 30, 12]))
    a = F2CResolutionSelector().select(inp)
    b = ResizeTokenSelector().select(inp)
    assert a.extras["grids"] == b.extras["grids"] == [(2, 3), (6, 5), (3, 4)]
    for ea, eb in zip(a.embeddings, b.embeddings):
        assert torch.equal(ea, eb)
