"""vidsieve: training-free frame and visual-token selection for video LLMs."""

from __future__ import annotations

from typing import Any

from .errors import (
    ContractError,
    EmptyInputError,
    FrameIndexError,
    ParameterError,
    UnknownNameError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    VidsieveError,
)
from .registry import (
    create_encoder,
    create_selector,
    create_token_selector,
    list_encoders,
    list_selectors,
    list_token_selectors,
    register_encoder,
    register_selector,
    register_token_selector,
)
from .types import Budget, FrameFeatures, Frames, Query, Selection, VideoMeta

__version__ = "0.1.0"

__all__ = [
    "Budget", "ContractError", "EmptyInputError", "FrameFeatures", "FrameIndexError", "Frames",
    "ParameterError", "Query", "Selection", "UnknownNameError", "VideoDecodeError", "VideoError",
    "VideoMeta", "VideoNotFoundError", "VidsieveError", "__version__", "create_encoder",
    "create_selector", "create_token_selector", "list_encoders", "list_selectors",
    "list_token_selectors", "register_encoder", "register_selector", "register_token_selector",
    "wrap",
]


def wrap(model: Any, processor: Any, **kwargs: Any) -> Any:
    """Wrap a Hugging Face video-LLM with frame/token selection (see :mod:`vidsieve.adapters`)."""
    from .adapters import wrap as _wrap  # lazy: transformers is an optional extra

    return _wrap(model, processor, **kwargs)
