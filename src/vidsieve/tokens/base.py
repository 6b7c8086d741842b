"""The token-selector contract.

A token selector sees, for one video, the per-frame token grids as they will enter the LLM
and decides which tokens stay (pruning) or what they become (merging/resampling), under a
per-frame allotment and a total budget.

Output convention (:class:`TokenSelection`), one entry per frame ``f``:

* ``index[f]``: int64 ``[k_f]`` sorted unique raster indices into the frame's ``h*w`` grid.
  For pruning these are the kept tokens. For merging/resampling methods each output token
  *stands at* the original grid cell given here (used for its position ids, e.g. Qwen's
  M-RoPE (t, h, w)); resampled grids never exceed native size, so the cells are unique.
* ``embeddings[f]``: ``[k_f, D]`` new embeddings, or ``None`` when the output tokens are the
  original tokens at ``index[f]`` unchanged (pure pruning).

Guarantees checked by :meth:`TokenSelector.select`: ``k_f <= allotment[f]``,
``sum(k_f) <= budget``, indices sorted unique in range, shapes consistent. With an
allotment equal to the native count every registered selector returns all tokens unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..allocation import largest_remainder
from ..configurable import Configurable
from ..errors import ContractError, EmptyInputError, ParameterError
from ..params import Int, NoneValue, check_param


def _short(a: np.ndarray) -> str:
    """A value for an error message: the entries of a small array, else its shape and dtype."""
    return repr(a.tolist()) if a.size <= 16 else f"an array of shape {a.shape} and dtype {a.dtype}"


def check_allotment(allotment: Any, num_frames: int) -> None:
    """Raise :class:`ParameterError` unless ``allotment`` is ``[F]`` non-negative whole numbers
    (an integer dtype, or floats that are whole numbers; bools and non-finite values refused)."""
    expected = f"non-negative integers of shape ({num_frames},)"
    try:
        a = np.asarray(allotment)
    except (TypeError, ValueError):  # ragged nested lists, ...
        raise ParameterError(
            f"The 'allotment' parameter of TokenInput must be {expected}. Got {allotment!r} instead."
        ) from None
    if a.shape != (num_frames,):
        raise ParameterError(
            f"The 'allotment' parameter of TokenInput must be {expected}. Got shape {a.shape} instead."
        )
    if np.issubdtype(a.dtype, np.integer):
        ok = bool(np.all(a >= 0))
    elif np.issubdtype(a.dtype, np.floating):
        ok = bool(np.all(np.isfinite(a)) and np.all(a >= 0) and np.all(a == np.floor(a)))
    else:  # bool, object, str, complex, ...
        ok = False
    if not ok:
        raise ParameterError(
            f"The 'allotment' parameter of TokenInput must be {expected}. Got {_short(a)} instead."
        )


@dataclass(frozen=True, eq=False)
class TokenInput:
    """Everything a token selector may use for one video.

    tokens:        float ``[F, h, w, D]`` token grids after the projector (LLM input space).
    allotment:     int64 ``[F]`` most tokens each frame may keep, or None (budget split evenly).
    budget:        most tokens in total (LLM tokens), or None (= sum of the allotment, or all).
    attention:     layer -> float ``[F, h*w]`` attention *received* per token in the vision
                   tower (column sums of softmax attention, averaged over heads). Keys are
                   layer indices as the tower counts them (negative allowed).
    cls_attention: float ``[F, h*w]`` [CLS]->patch attention where the tower has a [CLS].
    pre_projector: float ``[F, h, w, D']`` vision features before the projector, or None.
    timestamps:    float64 ``[F]`` seconds of each frame, or None.
    downscale:     float64 ``[F]`` per-side downscale factor per frame (F2C), or None.
    """

    tokens: torch.Tensor
    allotment: np.ndarray | None = None
    budget: int | None = None
    attention: dict[int, torch.Tensor] = field(default_factory=dict)
    cls_attention: torch.Tensor | None = None
    pre_projector: torch.Tensor | None = None
    timestamps: np.ndarray | None = None
    downscale: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.tokens.shape[1]), int(self.tokens.shape[2])

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.grid
        return h * w

    def resolved_allotment(self) -> np.ndarray:
        """int64 ``[F]``: the allotment capped at native size and scaled to the budget.

        Tokens a frame cannot take (allotment above its native count) are redistributed to the
        frames with room, proportionally to their allotments (QuoTA's cap-and-redistribute);
        frames allotted 0 stay at 0. The total is ``min(sum(allotment), budget)``.
        """
        f, n = self.num_frames, self.tokens_per_frame
        if self.allotment is None:
            total = f * n if self.budget is None else min(self.budget, f * n)
            return largest_remainder(total, np.ones(f), cap=n)
        raw = np.asarray(self.allotment, dtype=np.int64)
        total = int(raw.sum()) if self.budget is None else min(int(raw.sum()), int(self.budget))
        if np.all(raw <= n) and total == int(raw.sum()):
            return raw.copy()
        return largest_remainder(total, raw.astype(np.float64), cap=n)

    def resolved_budget(self) -> int:
        return int(self.resolved_allotment().sum())


@dataclass(eq=False)
class TokenSelection:
    """Per-frame outputs of a token selector (see module docstring).

    index:      list of F int64 tensors ``[k_f]``.
    embeddings: list of F tensors ``[k_f, D]`` or None (pure pruning).
    grid:       the input grid ``(h, w)``.
    selector, params, timings, extras: as in frame :class:`~vidsieve.types.Selection`.
    """

    index: list[torch.Tensor]
    embeddings: list[torch.Tensor] | None
    grid: tuple[int, int]
    selector: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return np.array([int(i.numel()) for i in self.index], dtype=np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def keep_mask(self) -> torch.Tensor:
        """bool ``[F, h*w]``: which grid cells have an output token."""
        h, w = self.grid
        m = torch.zeros(len(self.index), h * w, dtype=torch.bool)
        for f, idx in enumerate(self.index):
            m[f, idx] = True
        return m

    def gather(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Output token embeddings per frame: ``embeddings`` or ``tokens[f].flatten()[index]``.

        tokens: ``[F, h, w, D]`` the input grids.
        """
        if self.embeddings is not None:
            return self.embeddings
        flat = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
        return [flat[f, idx.to(flat.device)] for f, idx in enumerate(self.index)]


class TokenSelector(Configurable):
    """Base class of all token selectors (see module docstring for the contract)."""

    #: True when the selector always outputs exactly the resolved allotment per frame.
    fills_budget: bool = True

    def select(self, inputs: TokenInput) -> TokenSelection:
        if not isinstance(inputs, TokenInput):
            raise ParameterError(
                f"{type(self).__name__}.select expects a TokenInput; got {type(inputs).__name__}."
            )
        tok = inputs.tokens
        if not isinstance(tok, torch.Tensor) or tok.ndim != 4:
            raise ParameterError(
                f"TokenInput.tokens must be a 4-D tensor [F, h, w, D]; got "
                f"{getattr(tok, 'shape', type(tok).__name__)}."
            )
        if tok.shape[0] == 0 or tok.shape[1] * tok.shape[2] == 0:
            raise EmptyInputError(f"{type(self).__name__} got no tokens (shape {tuple(tok.shape)}).")
        if tok.shape[3] == 0:
            raise ParameterError(f"TokenInput.tokens has width D=0 (shape {tuple(tok.shape)}); tokens need features.")
        if tok.is_meta:
            raise ParameterError("TokenInput.tokens is a meta tensor (no data); load the model's weights first.")
        if not tok.is_floating_point():
            raise ParameterError(f"TokenInput.tokens must be a floating-point tensor; got {tok.dtype}.")
        check_param("TokenInput", "budget", inputs.budget, [Int(ge=1), NoneValue()])
        if inputs.allotment is not None:
            check_allotment(inputs.allotment, int(tok.shape[0]))
        if not bool(torch.isfinite(tok).all()):
            bad = int((~torch.isfinite(tok)).flatten(1).any(dim=1).nonzero()[0, 0])
            raise ParameterError(
                f"TokenInput.tokens must be finite; frame {bad} has NaN or inf values "
                "(check the vision tower's dtype / overflow)."
            )
        allot = inputs.resolved_allotment()
        start = time.perf_counter()
        out = self._select(inputs, allot)
        elapsed = time.perf_counter() - start
        self._check_output(out, inputs, allot)
        out.selector = self.name or type(self).__name__
        out.params = self.get_params()
        out.timings["select"] = elapsed
        return out

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        """Return a :class:`TokenSelection` with ``k_f <= allotment[f]`` per frame."""
        raise NotImplementedError

    def _check_output(self, out: TokenSelection, inputs: TokenInput, allot: np.ndarray) -> None:
        name = type(self).__name__
        f, n, d = inputs.num_frames, inputs.tokens_per_frame, int(inputs.tokens.shape[-1])
        if len(out.index) != f:
            raise ContractError(f"{name} returned {len(out.index)} frames; expected {f}.")
        for i, idx in enumerate(out.index):
            if idx.dtype != torch.int64 or idx.ndim != 1:
                raise ContractError(f"{name}: index[{i}] must be a 1-D int64 tensor.")
            if idx.numel() > allot[i] or (self.fills_budget and idx.numel() != allot[i]):
                raise ContractError(
                    f"{name}: frame {i} has {idx.numel()} tokens; its allotment is {allot[i]}."
                )
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise ContractError(f"{name}: index[{i}] outside [0, {n}).")
            if idx.numel() > 1 and bool((idx[1:] <= idx[:-1]).any()):
                raise ContractError(f"{name}: index[{i}] is not sorted and unique.")
            if out.embeddings is not None:
                e = out.embeddings[i]
                if tuple(e.shape) != (idx.numel(), d):
                    raise ContractError(
                        f"{name}: embeddings[{i}] has shape {tuple(e.shape)}; expected ({idx.numel()}, {d})."
                    )
        if out.embeddings is not None and len(out.embeddings) != f:
            raise ContractError(f"{name}: embeddings must have one entry per frame.")
        if out.embeddings is not None and not all(bool(torch.isfinite(e).all()) for e in out.embeddings):
            raise ContractError(f"{name} produced NaN or inf embeddings from finite tokens.")
