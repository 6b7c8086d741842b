"""Reading a query image: any common file and pixel format to one 8-bit RGB array.

:func:`load_query_image` is what ``vidsieve compare --query-image`` and the Python API use.
Every image becomes the 8-bit sRGB picture a viewer would show:

- **Orientation**: an EXIF orientation tag (phone photos) is applied, so the picture is upright.
- **High bit depth**: 16-bit grayscale (``I;16``, and 32-bit integer ``I``, which older
  readers use for 16-bit PNGs) is scaled from 0..65535 to 0..255 (``round(v / 257)``) instead
  of being clipped at 255. Float (``F``) images are taken as 0..1 when every value lies in
  [0, 1], else as 0..255 (clipped). 16-bit RGB(A) PNGs are reduced to 8 bits by the reader.
- **Palette, grayscale, 1-bit, CMYK, YCbCr**: converted to RGB (CMYK with
  ``(255 - c) * (255 - k) / 255`` per channel). Embedded ICC colour profiles are not applied:
  pixel values are taken as sRGB.
- **Transparency** (an alpha channel, or a palette / grayscale transparency key): the image
  is composited **on white**, the background an image viewer or a web page shows, so a
  transparent cut-out reads as the object on a plain light background rather than on the
  arbitrary colour stored under its transparent pixels.
- **Animated** images (GIF, APNG, WebP): the first frame.

Size limit: at most :data:`MAX_QUERY_PIXELS` pixels (64 megapixels, e.g. 8192 x 8192). The
limit is checked from the file's header before any pixel is decoded, so a decompression bomb
(a small file declaring 40000 x 40000 pixels) is refused at once with a clear error instead of
allocating gigabytes. A query image is resized to the encoder's input size anyway; downscale a
larger picture before using it.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ParameterError

if TYPE_CHECKING:
    from PIL import Image

#: the most pixels (width x height) a query image may have.
MAX_QUERY_PIXELS = 8192 * 8192

#: where transparent pixels are composited (RGB, 0..255).
BACKGROUND = (255, 255, 255)


def load_query_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The image at ``path`` as a uint8 array of shape ``[H, W, 3]`` (RGB, upright).

    Raises :class:`~vidsieve.errors.ParameterError` (one line) when the file is missing, is
    not an image, is truncated or corrupt, has more than :data:`MAX_QUERY_PIXELS` pixels, or
    has a pixel format that cannot be converted to RGB. See the module docstring for how each
    format is converted.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise ParameterError(f"Query image not found: {p}")
    if p.is_dir():
        raise ParameterError(f"Query image {p} is a folder, not an image file.")
    try:
        with warnings.catch_warnings():
            # the size is checked below against a lower limit than Pillow's warning threshold
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                _check_size(p, im.size)
                im.seek(0)
                return to_rgb8(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError as e:
        # Pillow refuses far larger images itself, before reporting their size to us
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)):,} pixels" if m else f"more than {MAX_QUERY_PIXELS:,} pixels"
        raise ParameterError(
            f"Query image {p} is too large: {size} (the limit is {MAX_QUERY_PIXELS:,}, "
            "e.g. 8192 x 8192). Downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise ParameterError(f"{p} is not an image file (or a format Pillow cannot read).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, ParameterError):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ParameterError(f"Query image {p} cannot be read: truncated or corrupt ({msg}).") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ParameterError(f"Query image {path} has no pixels (size {w} x {h}).")
    if w * h > MAX_QUERY_PIXELS:
        raise ParameterError(
            f"Query image {path} is too large: {w * h:,} pixels ({w} x {h}; the limit is "
            f"{MAX_QUERY_PIXELS:,}, e.g. 8192 x 8192). Downscale it first."
        )


def to_rgb8(im: Image.Image) -> np.ndarray:
    """A decoded PIL image as uint8 ``[H, W, 3]`` RGB (the conversions of the module docstring).

    Raises :class:`~vidsieve.errors.ParameterError` for a mode with no RGB conversion.
    """
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        v = np.asarray(im, dtype=np.float64)
        gray = np.rint(np.clip(v, 0, 65535) / 257.0).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        v = np.asarray(im, dtype=np.float64)
        v = np.nan_to_num(v, nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if v.size and v.min() >= 0.0 and v.max() <= 1.0 else 1.0
        gray = np.rint(np.clip(v * scale, 0, 255)).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
    try:
        if has_alpha:
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
            alpha = rgba[:, :, 3:4] / 255.0
            bg = np.asarray(BACKGROUND, dtype=np.float64)
            rgb = rgba[:, :, :3] * alpha + bg * (1.0 - alpha)
            return np.ascontiguousarray(np.rint(rgb).astype(np.uint8))
        out = im if mode == "RGB" else im.convert("RGB")
    except ValueError as e:  # e.g. "conversion from LAB to RGB not supported"
        raise ParameterError(f"Query image has pixel mode {mode!r}, which cannot be converted to RGB ({e}).") from None
    arr = np.asarray(out, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - Pillow's RGB is always [H, W, 3]
        raise ParameterError(f"Query image decoded to shape {arr.shape}, not [H, W, 3].")
    return np.ascontiguousarray(arr)


def resize_rgb(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[H, W, 3]`` frame resized to ``size`` ``(h, w)`` (Pillow: box reduction down to
    twice the target, then bilinear): cheap, alias-free downscaling of single frames."""
    from PIL import Image

    img = Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img)
