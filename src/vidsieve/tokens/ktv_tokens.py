"""KTV key tokens: per-frame top-k by importance and (1 - redundancy) (methods.md section 2).

Score per token (:func:`vidsieve.kernels.token_scores.ktv_token_scores`)::

    alpha * minmax(importance) + (1 - alpha) * (1 - minmax(redundancy))

redundancy = mean cosine similarity of the token to the other tokens of its frame, computed in
O(L*D) (no L x L matrix). Each frame keeps its ``allotment[f]`` best tokens, in raster order.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..params import Choice, Float, Int
from ..registry import register_token_selector
from ._common import (
    fallback_importance,
    full_allotment,
    mask_to_index,
    per_frame_stat,
    redundancy_features,
    topk_mask,
)
from .base import TokenInput, TokenSelection, TokenSelector


def resolve_importance(
    inputs: TokenInput, importance: str, layer: int, fallback: str, source: str, owner: str
) -> tuple[torch.Tensor, str]:
    """KTV importance float32 ``[F, L]`` and where it came from.

    ``"auto"``: ``cls_attention`` when given, else ``attention[layer]`` when present, else the
    attention-free ``fallback`` (``"norm"`` or ``"distinctiveness"``). ``"cls"`` and
    ``"attention"`` raise a :class:`ParameterError` when their statistic is missing; ``"norm"``
    and ``"distinctiveness"`` never use attention.
    """
    if importance in ("auto", "cls") and inputs.cls_attention is not None:
        return per_frame_stat(inputs.cls_attention, inputs, "cls_attention", owner), "cls_attention"
    if importance == "cls":
        raise ParameterError(
            f"{owner}: importance='cls' but TokenInput.cls_attention is None (the tower has no "
            "[CLS] or it was not hooked); use importance='auto' or 'attention'."
        )
    if importance in ("auto", "attention") and layer in inputs.attention:
        stat = per_frame_stat(inputs.attention[layer], inputs, f"attention[{layer}]", owner)
        return stat, f"attention[{layer}]"
    if importance == "attention":
        have = sorted(inputs.attention)
        raise ParameterError(
            f"{owner}: importance='attention' needs TokenInput.attention[{layer}]; the input has "
            f"layers {have}. Set attention_layer to one of them or use importance='auto'."
        )
    kind = fallback if importance == "auto" else importance
    return fallback_importance(inputs, kind, source, owner)


@register_token_selector(
    "ktv-tokens", "KTV key tokens: per-frame top-k of attention importance and low redundancy."
)
class KTVTokenSelector(TokenSelector):
    """KTV's key-token pruning (arXiv 2602.03615).

    Parameters
    ----------
    alpha:
        Weight of importance against (1 - redundancy). Default 0.2, the released code's
        example; the paper's ablation is best near 0.8-0.9.
    importance:
        ``"auto"`` (default): [CLS] attention (``TokenInput.cls_attention``) when present, as
        KTV does on CLIP; else attention received at ``attention_layer``
        (``TokenInput.attention``), KTV's rule for towers without [CLS]; else the
        attention-free ``fallback``. ``"cls"`` / ``"attention"`` force one source and raise if
        it is missing; ``"norm"`` / ``"distinctiveness"`` force an attention-free importance.
    attention_layer:
        Vision layer whose received attention is used (default -2, the layer LLaVA-style models
        take their features from).
    fallback:
        Importance when ``"auto"`` finds no attention (e.g. the ``pixel`` encoder's grids):
        ``"norm"`` (default; L2 norm of each token) or ``"distinctiveness"`` (1 - redundancy,
        which then duplicates the redundancy term: the score reduces to redundancy alone).
    redundancy_source:
        Features for redundancy: ``"auto"`` (``pre_projector`` when given, as KTV uses the
        penultimate vision layer, else the tokens), ``"pre_projector"`` or ``"tokens"``.
    backend:
        Kernel backend for the scores (``"auto"``, ``"torch"``, ``"triton"``).

    Importance statistics are used as given: released KTV feeds raw [CLS] logits (no softmax),
    the paper the softmax; min-max scaling removes the scale, not the softmax's non-linearity,
    so build ``cls_attention`` accordingly (``vidsieve.kernels.attention_received.cls_attention``
    has ``softmax=``). A full allotment returns every token (``embeddings=None``).

    Ties in the score go to the lower raster index (stable sort). ``extras`` records the
    importance and redundancy sources and the per-token ``scores`` (float32 ``[F, L]``).
    """

    _parameter_constraints = {
        "alpha": [Float(ge=0.0, le=1.0)],
        "importance": [Choice("auto", "cls", "attention", "norm", "distinctiveness")],
        "attention_layer": [Int()],
        "fallback": [Choice("norm", "distinctiveness")],
        "redundancy_source": [Choice("auto", "pre_projector", "tokens")],
        "backend": [Choice("auto", "torch", "triton")],
    }

    def __init__(
        self,
        *,
        alpha: float = 0.2,
        importance: str = "auto",
        attention_layer: int = -2,
        fallback: str = "norm",
        redundancy_source: str = "auto",
        backend: str = "auto",
    ) -> None:
        self.alpha = alpha
        self.importance = importance
        self.attention_layer = attention_layer
        self.fallback = fallback
        self.redundancy_source = redundancy_source
        self.backend = backend
        self._validate_params()

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        from vidsieve.kernels.token_scores import ktv_token_scores

        n = inputs.tokens_per_frame
        owner = type(self).__name__
        if full_allotment(allotment, n):
            idx = [torch.arange(n, dtype=torch.int64) for _ in range(inputs.num_frames)]
            return TokenSelection(index=idx, embeddings=None, grid=inputs.grid,
                                  extras={"identity": True})
        imp, imp_src = resolve_importance(
            inputs, self.importance, self.attention_layer, self.fallback,
            self.redundancy_source, owner,
        )
        x, red_src = redundancy_features(inputs, self.redundancy_source, owner)
        scores = ktv_token_scores(x, imp.to(x.device), float(self.alpha), backend=self.backend)
        k = torch.as_tensor(np.asarray(allotment), dtype=torch.int64)
        keep = topk_mask(scores, k)
        return TokenSelection(
            index=mask_to_index(keep.cpu()),
            embeddings=None,
            grid=inputs.grid,
            extras={"importance_source": imp_src, "redundancy_source": red_src,
                    "scores": scores.cpu()},
        )


__all__ = ["KTVTokenSelector", "resolve_importance"]
