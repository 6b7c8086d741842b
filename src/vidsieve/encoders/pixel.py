"""The default frame encoder: a fast, deterministic descriptor with no weights.

Design (measured, see ``docs/selection-benchmarks.md``): a frame descriptor for *selection*
must put frames of one shot close together and frames of different shots far apart, even
though objects move and the camera pans inside a shot. Layout maps (luminance or gradient
on a fine grid) follow the moving content, so they spread a shot out as much as shots are
apart; colour statistics of the whole frame barely move. The descriptor is therefore mostly
colour distribution, with a coarse layout and a texture term at lower weight:

* ``colour``: joint histogram in an opponent colour space (luminance ``L = (R+G+B)/3``,
  red-green ``(R-G)/2``, yellow-blue ``(R+G)/4 - B/2``; 4 x 6 x 6 = 144 bins), square-rooted
  so that L2 distance between unit blocks is the Hellinger distance. Opponent axes separate
  brightness from chroma, so a lighting drift moves mass along one axis only.
* ``centre`` (optional, weight ``centre``, default 0 = absent): the same histogram of the
  frame's central quarter (the middle half of each side), where a shot's subject usually
  is, so that an image query of an object matches frames showing it over a different
  background. Measured on the benchmark's image-query needles at 8 frames (teacher
  selector): recall 0.46 without it, 0.61 at ``centre=0.5``, 0.67 at 0.8 (the previous
  layout descriptor: 0.70); but it spreads panning shots (separation 0.33 -> 0.38 -> 0.42)
  and KTV then covers one scene fewer than uniform sampling on a 50-shot panning video.
  The default favours covering the video; use ``centre=0.5`` for object image queries.
* ``layout``: colour moments on a coarse ``lum_grid`` x ``lum_grid`` grid (mean and standard
  deviation of the three opponent channels per cell, centred on mid-grey): where things are,
  at a resolution objects and pans barely change.
* ``texture``: histogram of gradient magnitudes (8 bins of ``sqrt |grad L|``): how busy the
  picture is, independent of where.

Each block is L2-normalised, weighted (colour 1, layout 0.4, texture 0.3, centre ``centre``)
and the result has unit norm: ``D = 144 + 6 * lum_grid**2 + 8`` (+ 144 with a centre block).

Everything is numpy on uint8 input (no torch ops, so nothing touches torch's process-wide
thread settings; numpy runs these reductions on the calling thread).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..params import Float, Int
from ..registry import register_encoder
from .base import FrameEncoder

#: weights of the (colour, layout, texture) blocks; measured, see the module docstring.
BLOCK_WEIGHTS = (1.0, 0.4, 0.3)
#: bins of the joint opponent-colour histogram per axis (L, red-green, yellow-blue).
COLOUR_BINS = (4, 6, 6)
#: bins of the gradient-magnitude histogram.
TEXTURE_BINS = 8
#: bumped whenever the descriptor's definition changes, so feature caches are not reused.
DESCRIPTOR_VERSION = 3


@register_encoder("pixel", "Opponent-colour histogram + coarse colour layout + texture; no weights (default).")
class PixelEncoder(FrameEncoder):
    """Shot-separating colour/layout/texture descriptor (see the module docstring).

    size:     frames are described at ``size`` x ``size`` (the decode size).
    lum_grid: side of the coarse layout grid of colour moments (default 2: quadrants).
    centre:   weight of the centre colour histogram (0: none; see the module docstring).
    grid:     side of the patch grid ``[B, grid, grid, 12]``, which describes each
              ``size/grid`` px patch like a vision tower's token: mean RGB, RGB std, mean
              ``|dx|``, ``|dy|`` and its 2x2 sub-patch luminances (for token selectors).
    """

    _parameter_constraints = {
        "size": [Int(ge=32, le=1024)], "lum_grid": [Int(ge=1, le=16)], "grid": [Int(ge=1, le=64)],
        "centre": [Float(ge=0, le=4)],
    }

    def __init__(self, *, size: int = 224, lum_grid: int = 2, grid: int = 14, centre: float = 0.0) -> None:
        self.size = size
        self.lum_grid = lum_grid
        self.grid = grid
        self.centre = centre
        self._validate_params()
        if size % grid:
            raise ParameterError(f"PixelEncoder: size ({size}) must be a multiple of grid ({grid}).")

    @property
    def decode_size(self) -> tuple[int, int]:  # type: ignore[override]
        return (self.size, self.size)

    @property
    def dim(self) -> int:
        colour = int(np.prod(COLOUR_BINS))
        return colour * (2 if self.centre > 0 else 1) + 6 * self.lum_grid**2 + TEXTURE_BINS

    #: frames encoded per vectorised step: bounds the float intermediates (~2 MB a frame).
    step: int = 16

    def cache_key(self) -> str:
        return f"{self!r}/descriptor-{DESCRIPTOR_VERSION}"

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
            raise ParameterError(f"PixelEncoder.encode expects uint8 [B, H, W, 3]; got {pixels.dtype} {pixels.shape}.")
        parts = [self._encode(self._resized(pixels[s : s + self.step])) for s in range(0, pixels.shape[0], self.step)]
        if not parts:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, self.grid, self.grid, 12), np.float32)
        return np.concatenate([e for e, _ in parts]), np.concatenate([g for _, g in parts])

    def _resized(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.shape[1:3] == (self.size, self.size):
            return pixels
        from ..images import resize_rgb

        return np.stack([resize_rgb(p, (self.size, self.size)) for p in pixels])

    def _encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``[B, S, S, 3]`` -> (float32 ``[B, D]``, float32 ``[B, grid, grid, 12]``).

        Everything is computed at half resolution (2x2 means) when ``S`` is even, at least 64
        and ``S / 2`` a multiple of ``grid``: colour statistics need no more, and it is 4x less
        work. The patch grid's gradients are then those of the half-resolution image.
        """
        half = self.size // 2
        if self.size % 2 == 0 and self.size >= 64 and half % self.grid == 0:
            x = _halve(pixels) * np.float32(1.0 / (4 * 255))
        else:
            x = pixels.astype(np.float32) * np.float32(1.0 / 255.0)
        grid = self._patch_grid(x)
        opp = _opponent(x)  # [B, s, s, 3]: L, rg, yb in [0, 1]
        blocks = [
            _joint_histogram(opp, COLOUR_BINS),
            _cell_moments(opp, self.lum_grid),
            _texture_histogram(opp[..., 0], TEXTURE_BINS),
        ]
        weights = list(BLOCK_WEIGHTS)
        if self.centre > 0:
            s = opp.shape[1]
            blocks.append(_joint_histogram(np.ascontiguousarray(opp[:, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4]), COLOUR_BINS))
            weights.append(float(self.centre))
        w = np.asarray(weights, np.float64)
        w = w / np.linalg.norm(w)
        emb = np.concatenate([wi * _unit(b) for wi, b in zip(w, blocks)], axis=1)
        return emb.astype(np.float32), grid

    def _patch_grid(self, x: np.ndarray) -> np.ndarray:
        """float ``[B, s, s, 3]`` in [0, 1] -> float32 ``[B, g, g, 12]``."""
        b, s, g = x.shape[0], x.shape[1], self.grid
        p = s // g
        lum = x @ np.asarray([0.299, 0.587, 0.114], np.float32)  # [B, s, s]
        dx = np.zeros_like(lum)
        dy = np.zeros_like(lum)
        dx[:, :, :-1] = np.abs(np.diff(lum, axis=2))
        dy[:, :-1, :] = np.abs(np.diff(lum, axis=1))
        mean = _pool(x, p)  # [B, g, g, 3]
        std = np.sqrt(np.maximum(_pool(x * x, p) - mean * mean, 0.0))
        gx, gy = _pool(dx, p), _pool(dy, p)  # [B, g, g]
        if p % 2 == 0:
            sub = _pool(lum, p // 2)  # [B, 2g, 2g]
        else:  # odd patches: the 2x2 sub-patch means of a nearest-neighbour 2x upsampling
            sub = _pool(np.repeat(np.repeat(lum, 2, axis=1), 2, axis=2), p)
        sub = sub.reshape(b, g, 2, g, 2).transpose(0, 1, 3, 2, 4).reshape(b, g, g, 4)
        out = np.concatenate([mean - 0.5, std, 4 * gx[..., None], 4 * gy[..., None], sub - 0.5], axis=-1)
        return np.ascontiguousarray(out, dtype=np.float32)


def _halve(x: np.ndarray) -> np.ndarray:
    """Sums of 2x2 blocks of ``[B, H, W, ...]`` (H, W even): uint16 for uint8 input."""
    if x.dtype == np.uint8:
        x = x.astype(np.uint16)
    return x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]


def _pool(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over non-overlapping ``f`` x ``f`` blocks of float ``[B, H, W, ...]`` (H, W multiples of f).

    Factors of 2 go through strided 2x2 sums (several times faster than a reshape-mean).
    """
    scale = 1.0
    while f % 2 == 0:
        x = _halve(x)
        scale *= 0.25
        f //= 2
    if f > 1:
        b, h, w = x.shape[:3]
        x = x.reshape(b, h // f, f, w // f, f, *x.shape[3:]).sum(axis=(2, 4))
        scale /= f * f
    return x * np.float32(scale)


def _opponent(x: np.ndarray) -> np.ndarray:
    """float RGB ``[..., 3]`` in [0, 1] -> (L, red-green, yellow-blue), each in [0, 1]."""
    m = np.asarray([[1 / 3, 0.5, 0.25], [1 / 3, -0.5, 0.25], [1 / 3, 0.0, -0.5]], np.float32)
    out = x @ m
    out[..., 1:] += 0.5
    return out


def _joint_histogram(opp: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """Square-rooted joint histogram per frame: float64 ``[B, prod(bins)]`` (rows sum of squares 1)."""
    b = opp.shape[0]
    n = np.asarray(bins)
    q = np.minimum((opp * n).astype(np.int64), n - 1)  # [B, h, w, 3]
    idx = (q[..., 0] * n[1] + q[..., 1]) * n[2] + q[..., 2]
    total = int(np.prod(n))
    idx = idx.reshape(b, -1) + (np.arange(b, dtype=np.int64) * total)[:, None]
    hist = np.bincount(idx.ravel(), minlength=total * b).reshape(b, total).astype(np.float64)
    return np.sqrt(hist / hist.sum(axis=1, keepdims=True))


def _cell_moments(opp: np.ndarray, cells: int) -> np.ndarray:
    """Mean - 0.5 and std of each channel on a ``cells`` x ``cells`` grid: float64 ``[B, 6 * cells^2]``.

    Cells are the ``array_split`` partition of rows and columns (sizes differ by at most 1).
    """
    b, h, w = opp.shape[:3]
    r0 = np.r_[0, np.cumsum([len(a) for a in np.array_split(np.arange(h), cells)])[:-1]]
    c0 = np.r_[0, np.cumsum([len(a) for a in np.array_split(np.arange(w), cells)])[:-1]]
    area = np.outer(np.diff(np.r_[r0, h]), np.diff(np.r_[c0, w]))[None, :, :, None]
    both = np.concatenate([opp, opp * opp], axis=-1).astype(np.float64)
    sums = np.add.reduceat(np.add.reduceat(both, r0, axis=1), c0, axis=2) / area  # [B, c, c, 6]
    mean = sums[..., :3]
    std = np.sqrt(np.maximum(sums[..., 3:] - mean * mean, 0.0))
    return np.concatenate([mean - 0.5, std], axis=-1).reshape(b, -1)


def _texture_histogram(lum: np.ndarray, bins: int) -> np.ndarray:
    """Square-rooted histogram of ``sqrt |grad lum|`` (0..0.4 in ``bins`` bins): float64 ``[B, bins]``."""
    b = lum.shape[0]
    dx = np.diff(lum, axis=2)[:, :-1, :]
    dy = np.diff(lum, axis=1)[:, :, :-1]
    mag = np.sqrt(np.sqrt(dx * dx + dy * dy))
    q = np.minimum((mag * (bins / 0.4)).astype(np.int64), bins - 1).reshape(b, -1)
    q = q + (np.arange(b, dtype=np.int64) * bins)[:, None]
    hist = np.bincount(q.ravel(), minlength=bins * b).reshape(b, bins).astype(np.float64)
    return np.sqrt(hist / hist.sum(axis=1, keepdims=True))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
