"""The frame-encoder contract: pixels -> per-frame vectors (and optionally a patch grid)."""

from __future__ import annotations

import numpy as np

from ..configurable import Configurable
from ..errors import ParameterError
from ..types import Query


class FrameEncoder(Configurable):
    """Base class of frame encoders.

    Subclasses implement :meth:`encode` and, where they can, :meth:`embed_text`.
    ``decode_size`` is the (H, W) frames are resized to at decode time, or None for native.
    """

    decode_size: tuple[int, int] | None = (224, 224)

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Encode a batch of frames.

        pixels: uint8 ``[B, H, W, 3]``.
        Returns float32 ``[B, D]`` embeddings and optionally float32 ``[B, h, w, d]`` patch
        descriptors on a fixed grid (None when the encoder has none).
        """
        raise NotImplementedError

    def embed_text(self, text: str) -> np.ndarray | None:
        """float32 ``[D]`` text embedding in the frame space, or None if unsupported."""
        return None

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        """float32 ``[D]`` embedding of a uint8 ``[H, W, 3]`` image (a visual query)."""
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ParameterError(f"An image query must be uint8 [H, W, 3]; got {image.dtype} {image.shape}.")
        emb, _ = self.encode(image[None])
        return emb[0]

    def embed_query(self, query: str | np.ndarray | Query) -> Query:
        """Build a :class:`Query` carrying its embedding (None where the encoder has no text side)."""
        if isinstance(query, Query):
            if query.embedding is not None:
                return query
            text, image = query.text, query.image
        elif isinstance(query, str):
            text, image = query, None
        elif isinstance(query, np.ndarray):
            text, image = None, query
        else:
            raise ParameterError(f"A query must be a str or a uint8 image; got {type(query).__name__}.")
        emb = self.embed_image(image) if image is not None else self.embed_text(text or "")
        return Query(text=text, image=image, embedding=emb)

    def cache_key(self) -> str:
        """Identifies the encoder's output for the feature cache."""
        return repr(self)
