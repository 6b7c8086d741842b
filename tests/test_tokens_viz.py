"""Token heat maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsieve.errors import ParameterError
from vidsieve.testing import make_token_input
from vidsieve.tokens.aot import AOTSelector
from vidsieve.tokens.base import TokenSelection
from vidsieve.tokens.viz import heatmap_figure, token_heatmap


def _frame() -> np.ndarray:
    return np.full((40, 60, 3), 200, dtype=np.uint8)


def test_kept_bright_dropped_dimmed() -> None:
    sel = TokenSelection(index=[torch.tensor([0, 5])], embeddings=None, grid=(2, 3))
    out = token_heatmap(_frame(), sel, 0, outline=False)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert (out[:20, :20] == 200).all()  # cell 0 kept
    assert (out[20:, 40:] == 200).all()  # cell 5 kept
    assert (out[:20, 20:40] == 60).all()  # cell 1 dropped: 200 * 0.3
    outlined = token_heatmap(_frame(), sel, 0)
    assert (outlined[0, 0] != 200).any() and (outlined[10, 10] == 200).all()


def test_merge_mass_tints_cells() -> None:
    sel = TokenSelection(index=[torch.tensor([0, 1])], embeddings=None, grid=(1, 2),
                         extras={"merge_mass": [torch.tensor([0.0, 3.0])]})
    out = token_heatmap(_frame(), sel, 0, outline=False)
    assert (out[:, :30] == 200).all()  # no mass: untinted
    assert out[20, 45, 0] > out[20, 45, 2]  # orange tint on the cell with most mass


def test_bad_inputs() -> None:
    sel = TokenSelection(index=[torch.tensor([0])], embeddings=None, grid=(2, 3))
    with pytest.raises(ParameterError):
        token_heatmap(_frame().astype(np.float32), sel, 0)
    with pytest.raises(ParameterError):
        token_heatmap(_frame(), sel, 1)


def test_heatmap_figure_from_selector() -> None:
    inp = make_token_input(3, 6, 6, 8, allotment=[10, 10, 10], seed=1)
    sel = AOTSelector(clip_len=1).select(inp)
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 48, 48, 3), dtype=np.uint8)
    fig = heatmap_figure(frames, {"aot": sel, "aot2": sel})
    assert len(fig.axes) == 6
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_resampled_frames_show_their_coarse_grid() -> None:
    from vidsieve.tokens.base import TokenInput
    from vidsieve.tokens.resize import ResizeTokenSelector

    sel = ResizeTokenSelector().select(TokenInput(tokens=torch.randn(2, 4, 4, 3), allotment=np.array([4, 0])))
    out = token_heatmap(_frame(), sel, 0)
    assert (out[5, 5] == 200).all() and (out[5, 14] == 200).all()  # whole frame kept
    assert (out[0, 5] != 200).any() and (out[19, 5] != 200).any()  # lattice of the 2x2 grid
    assert (token_heatmap(_frame(), sel, 1)[5, 5] == 60).all()  # empty frame dimmed
