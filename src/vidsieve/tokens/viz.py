"""Heat maps of token selections: which grid cells of a frame reach the LLM.

``token_heatmap`` paints one frame (kept cells bright, dropped cells dimmed, merged tokens
tinted by how much mass merged into them when the selector reports it), ``heatmap_figure``
lays out several frames x selectors with matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ParameterError
from .base import TokenSelection

#: RGB of the tint on merged tokens and of the cell outlines.
MERGE_COLOUR = np.array([255.0, 140.0, 0.0])
OUTLINE_COLOUR = np.array([255.0, 255.0, 255.0])


def _cell_edges(size: int, cells: int) -> np.ndarray:
    """Pixel boundaries of ``cells`` equal cells over ``size`` pixels, int ``[cells + 1]``."""
    return (np.arange(cells + 1) * size) // cells


def _merge_mass(selection: TokenSelection, frame: int) -> np.ndarray | None:
    """Per output token mass merged into it (float ``[k]``), from ``extras`` when available."""
    for key in ("merge_mass", "merge_size"):
        per_frame = selection.extras.get(key)
        if per_frame is None:
            continue
        m = per_frame[frame]
        m = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
        if m.shape == (int(selection.index[frame].numel()),):
            return m.astype(np.float64)
    return None


def _resampled_grid(selection: TokenSelection, frame: int, grid: tuple[int, int]) -> tuple[int, int] | None:
    """The output grid ``(h', w')`` of a frame that was resampled (resize, f2c-resolution,
    quota-assign bilinear/pool), or None for pruned/merged frames and untouched ones."""
    grids = selection.extras.get("grids")
    if selection.embeddings is None or grids is None or selection.extras.get("assigner") == "linspace":
        return None
    g = tuple(int(v) for v in grids[frame])
    if len(g) != 2 or g == tuple(grid) or 0 in g:
        return None
    return g[0], g[1]


def _paint_resampled(img: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A resampled frame covers the whole image at a coarser grid: draw that grid's lattice."""
    big_h, big_w = img.shape[:2]
    out = img.astype(np.float64)
    ye, xe = _cell_edges(big_h, grid[0]), _cell_edges(big_w, grid[1])
    rows = np.isin(np.arange(big_h), np.r_[ye[:-1], ye[1:] - 1])
    cols = np.isin(np.arange(big_w), np.r_[xe[:-1], xe[1:] - 1])
    on = rows[:, None] | cols[None, :]
    out[on] = 0.5 * out[on] + 0.5 * OUTLINE_COLOUR
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def token_heatmap(
    frame_rgb: np.ndarray,
    selection: TokenSelection,
    frame: int,
    grid: tuple[int, int] | None = None,
    *,
    dim: float = 0.3,
    outline: bool = True,
) -> np.ndarray:
    """Overlay a frame's token selection on its thumbnail.

    frame_rgb: uint8 ``[H, W, 3]``; selection: any :class:`TokenSelection`; frame: which of its
    frames; grid: ``(h, w)`` token grid (default ``selection.grid``).
    Kept cells keep their pixels, dropped cells are multiplied by ``dim``. A frame resampled to
    a coarser grid (``extras["grids"]`` of resize / f2c-resolution / quota-assign's bilinear and
    pool assigners) keeps all its pixels and shows the coarse grid's lattice instead, since its
    tokens cover the whole frame at lower resolution (an empty frame is dimmed). When the selector
    reports merged mass (``extras["merge_mass"]`` (AOT) or ``extras["merge_size"]`` (ToMe)),
    each output cell is tinted orange in proportion to its mass relative to the frame's
    largest (tokens that absorbed nothing stay untinted); ``outline`` draws a 1-px border
    around kept cells. Returns uint8 ``[H, W, 3]``.
    """
    img = np.asarray(frame_rgb)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ParameterError(f"token_heatmap: frame_rgb must be uint8 [H, W, 3]; got {img.dtype} {img.shape}.")
    if not 0 <= frame < len(selection.index):
        raise ParameterError(f"token_heatmap: frame {frame} outside [0, {len(selection.index)}).")
    h, w = selection.grid if grid is None else grid
    if h * w != selection.grid[0] * selection.grid[1]:
        raise ParameterError(f"token_heatmap: grid {(h, w)} does not match the selection's {selection.grid}.")
    big_h, big_w = img.shape[:2]
    if big_h < h or big_w < w:
        raise ParameterError(f"token_heatmap: the image ({big_h}x{big_w}) is smaller than the grid ({h}x{w}).")
    idx = selection.index[frame].cpu().numpy()
    kept = np.zeros(h * w, dtype=bool)
    kept[idx] = True
    resampled = _resampled_grid(selection, frame, (h, w))
    if resampled is not None:
        return _paint_resampled(img, resampled)
    mass_cells = np.zeros(h * w)
    mass = _merge_mass(selection, frame)
    if mass is not None and mass.size and mass.max() > 0:
        mass_cells[idx] = mass / mass.max()
    ye, xe = _cell_edges(big_h, h), _cell_edges(big_w, w)
    row_of = np.searchsorted(ye, np.arange(big_h), side="right") - 1  # pixel row -> cell row
    col_of = np.searchsorted(xe, np.arange(big_w), side="right") - 1
    cell = row_of[:, None] * w + col_of[None, :]  # [H, W]
    out = img.astype(np.float64)
    out[~kept[cell]] *= dim
    tint = (0.6 * mass_cells[cell])[..., None]
    out = out * (1 - tint) + MERGE_COLOUR * tint
    if outline:
        # a pixel is on a kept cell's boundary when it is the first/last row/col of its cell
        first_row = np.isin(np.arange(big_h), ye[:-1])
        last_row = np.isin(np.arange(big_h), ye[1:] - 1)
        first_col = np.isin(np.arange(big_w), xe[:-1])
        last_col = np.isin(np.arange(big_w), xe[1:] - 1)
        edge = (first_row | last_row)[:, None] | (first_col | last_col)[None, :]
        on = edge & kept[cell]
        out[on] = 0.5 * out[on] + 0.5 * OUTLINE_COLOUR
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def heatmap_figure(
    frames_rgb: Sequence[np.ndarray] | np.ndarray,
    selections: Mapping[str, TokenSelection],
    frames: Sequence[int] | None = None,
    *,
    titles: Sequence[str] | None = None,
    cell_inches: float = 2.2,
) -> Any:
    """A matplotlib figure: one row per selector, one column per frame.

    frames_rgb: the thumbnails, uint8 ``[F, H, W, 3]`` (or a list of ``[H, W, 3]``), aligned
    with the selections' frames; selections: name -> :class:`TokenSelection`; frames: which
    frames to show (default all, at most 8 evenly spaced); titles: column titles (default
    ``"frame i"``). Each panel is titled with the tokens kept. Returns the Figure (save it with
    ``fig.savefig(path)``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not selections:
        raise ParameterError("heatmap_figure needs at least one selection.")
    n_frames = len(frames_rgb)
    if frames is None:
        frames = sorted({int(i) for i in np.linspace(0, n_frames - 1, min(8, n_frames)).round()})
    frames = list(frames)
    fig, axes = plt.subplots(
        len(selections), len(frames), squeeze=False,
        figsize=(cell_inches * len(frames), cell_inches * len(selections) + 0.3),
    )
    for r, (name, sel) in enumerate(selections.items()):
        for c, f in enumerate(frames):
            ax = axes[r][c]
            ax.imshow(token_heatmap(np.asarray(frames_rgb[f]), sel, f))
            ax.set_xticks([])
            ax.set_yticks([])
            k, n = int(sel.index[f].numel()), sel.grid[0] * sel.grid[1]
            head = (titles[c] if titles is not None else f"frame {f}") + "\n" if r == 0 else ""
            ax.set_title(f"{head}{k}/{n} tokens", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["heatmap_figure", "token_heatmap"]
