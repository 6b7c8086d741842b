"""Query images: every pixel format read as the 8-bit RGB picture it shows; bombs refused.

Each converted image is checked against an 8-bit RGB reference built here with numpy (the
oracle), never against the loader's own output."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidsieve.errors import ParameterError
from vidsieve.images import MAX_QUERY_PIXELS, load_query_image


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A small 8-bit RGB picture with smooth and sharp content (not square, to catch transposes)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:40]
    img = np.stack([xx * 6, yy * 10, (xx + yy) * 4], axis=2) + rng.integers(0, 20, (24, 40, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that declares ``w x h`` 8-bit grayscale pixels and carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [40000, 10000])
def test_decompression_bomb_is_refused_from_the_header(tmp_path: Path, side: int) -> None:
    # 40000^2 is past Pillow's own bomb error, 10000^2 only past its warning: both refused by us
    p = tmp_path / "bomb.png"
    _png_header_only(p, side, side)
    assert p.stat().st_size < 10_000
    with pytest.raises(ParameterError, match=rf"too large: {side * side:,} pixels.*limit is 67,108,864.*Downscale"):
        load_query_image(p)


def test_largest_allowed_size_is_read(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("L", (8192, 4), 7).save(p)
    assert 8192 * 4 <= MAX_QUERY_PIXELS
    assert load_query_image(p).shape == (4, 8192, 3)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path, rgb: np.ndarray) -> None:
    gray8 = rgb[:, :, 0]
    p = tmp_path / "g16.png"
    Image.fromarray(gray8.astype(np.uint16) * 257).save(p)  # 0..255 -> 0..65535, exact
    assert Image.open(p).mode.startswith("I")
    out = load_query_image(p)
    assert out.dtype == np.uint8 and out.shape == (*gray8.shape, 3)
    np.testing.assert_array_equal(out, np.repeat(gray8[:, :, None], 3, axis=2))
    # values between the 8-bit steps round to the nearest one
    v = np.array([[0, 128, 129, 385, 65278, 65535]], dtype=np.uint16)
    q = tmp_path / "g16b.png"
    Image.fromarray(v).save(q)
    np.testing.assert_array_equal(load_query_image(q)[0, :, 0], [0, 0, 1, 1, 254, 255])


def test_16bit_grayscale_matches_8bit_for_the_encoder(tmp_path: Path, rgb: np.ndarray) -> None:
    """The issue's symptom: the same picture as 16-bit and 8-bit must give the same query."""
    from vidsieve.encoders.pixel import PixelEncoder

    gray8 = rgb[:, :, 1]
    p8, p16 = tmp_path / "g8.png", tmp_path / "g16.png"
    Image.fromarray(gray8).save(p8)
    Image.fromarray(gray8.astype(np.uint16) * 257).save(p16)
    enc = PixelEncoder()
    e16, e8 = (enc.embed_query(load_query_image(p)).embedding for p in (p16, p8))
    assert e16 is not None and e8 is not None
    np.testing.assert_array_equal(e16, e8)


def test_float_image_in_unit_range(tmp_path: Path, rgb: np.ndarray) -> None:
    gray8 = rgb[:, :, 2]
    p = tmp_path / "f.tiff"
    Image.fromarray(gray8.astype(np.float32) / 255.0, mode="F").save(p)
    np.testing.assert_array_equal(load_query_image(p), np.repeat(gray8[:, :, None], 3, axis=2))


@pytest.mark.parametrize("fmt", ["png", "gif", "bmp"])
def test_palette_image(tmp_path: Path, rgb: np.ndarray, fmt: str) -> None:
    ref = (rgb // 64) * 64 + 32  # at most 64 colours: an exact palette exists
    pal = Image.fromarray(ref).quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    assert pal.mode == "P"
    p = tmp_path / f"p.{fmt}"
    pal.save(p)
    np.testing.assert_array_equal(load_query_image(p), ref)


def test_palette_transparency_is_white(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 0] + [0] * (3 * 253))
    p = tmp_path / "t.png"
    im.save(p, transparency=2)
    ref = np.array([[[10, 20, 30], [200, 100, 50]], [[200, 100, 50], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(load_query_image(p), ref)


def _cmyk_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Full under-colour removal: k = 255 - max(r, g, b), then c, m, y from what remains."""
    x = rgb.astype(np.float64)
    k = 255.0 - x.max(axis=2)
    room = np.maximum(255.0 - k, 1e-9)
    cmy = 255.0 * (255.0 - k[:, :, None] - x) / room[:, :, None]
    return np.rint(np.clip(np.concatenate([cmy, k[:, :, None]], axis=2), 0, 255)).astype(np.uint8)


def test_cmyk_with_black_channel(tmp_path: Path, rgb: np.ndarray) -> None:
    cmyk = _cmyk_from_rgb(rgb)
    assert cmyk[:, :, 3].max() > 100  # the black channel is really used
    p = tmp_path / "c.tiff"
    Image.fromarray(cmyk, mode="CMYK").save(p)
    out = load_query_image(p).astype(int)
    assert np.abs(out - rgb.astype(int)).max() <= 2  # 8-bit rounding of c, m, y, k


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_and_bilevel(tmp_path: Path, rgb: np.ndarray, mode: str) -> None:
    gray = rgb[:, :, 0] if mode == "L" else np.where(rgb[:, :, 0] > 128, 255, 0).astype(np.uint8)
    im = Image.fromarray(gray).convert(mode) if mode == "1" else Image.fromarray(gray)
    p = tmp_path / f"{mode}.png"
    im.save(p)
    np.testing.assert_array_equal(load_query_image(p), np.repeat(gray[:, :, None], 3, axis=2))


def test_alpha_is_composited_on_white(tmp_path: Path, rgb: np.ndarray) -> None:
    alpha = np.zeros(rgb.shape[:2], dtype=np.uint8)
    alpha[:, 10:20] = 255
    alpha[:, 20:30] = 128
    # stored colours under the transparent part are black, as many tools write them
    stored = rgb.copy()
    stored[:, :10] = 0
    p = tmp_path / "a.png"
    Image.fromarray(np.dstack([stored, alpha]), mode="RGBA").save(p)
    out = load_query_image(p)
    a = alpha[:, :, None] / 255.0
    ref = np.rint(stored * a + 255.0 * (1 - a)).astype(np.uint8)
    np.testing.assert_array_equal(out, ref)
    assert (out[:, :10] == 255).all()
    np.testing.assert_array_equal(out[:, 10:20], rgb[:, 10:20])
    # fully opaque RGBA is the RGB picture itself; LA likewise for grayscale
    q = tmp_path / "opaque.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), mode="RGBA").save(q)
    np.testing.assert_array_equal(load_query_image(q), rgb)
    la = tmp_path / "la.png"
    Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), mode="LA").save(la)
    g = rgb[:, :, 0:1] * a + 255.0 * (1 - a)
    np.testing.assert_array_equal(load_query_image(la), np.repeat(np.rint(g).astype(np.uint8), 3, axis=2))


def test_exif_orientation_is_applied(tmp_path: Path, rgb: np.ndarray) -> None:
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    p = tmp_path / "phone.png"
    im.save(p, exif=exif)
    np.testing.assert_array_equal(load_query_image(p), np.rot90(rgb, k=-1))


def test_animated_gif_gives_the_first_frame(tmp_path: Path, rgb: np.ndarray) -> None:
    ref = (rgb // 64) * 64 + 32
    frames = [Image.fromarray(ref), Image.fromarray(255 - ref)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    np.testing.assert_array_equal(load_query_image(p), ref)


def test_plain_rgb_is_unchanged(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(p)
    out = load_query_image(p)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_bad_files_give_one_line_errors(tmp_path: Path, rgb: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="not found"):
        load_query_image(tmp_path / "nope.png")
    with pytest.raises(ParameterError, match="is a folder"):
        load_query_image(tmp_path)
    txt = tmp_path / "x.png"
    txt.write_text("not an image")
    with pytest.raises(ParameterError, match="is not an image file"):
        load_query_image(txt)
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ParameterError, match="truncated or corrupt") as e:
        load_query_image(cut)
    assert "\n" not in str(e.value)
