"""Real-world video input: rotation metadata, odd and extreme sizes, variable frame rate, codec
names and clean one-line errors. Every test video is made here with the FFmpeg that ships in
imageio-ffmpeg; the expected frames and times come from how the file was made, not from the
code under test."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsieve import VideoDecodeError, decoding
from vidsieve.decoding import decode_frames, iter_frames, probe, sample_indices

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], input=stdin, check=True)


def _pattern(h: int, w: int, n: int) -> np.ndarray:
    """Smooth, asymmetric frames (so every rotation and flip looks different): red grows to the
    right, green downwards, a blue block sits top-left, brightness drifts over time."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.zeros((h, w, 3), np.float64)
    base[..., 0] = 40 + 180 * x / max(w - 1, 1)
    base[..., 1] = 40 + 180 * y / max(h - 1, 1)
    base[..., 2] = np.where((y < h // 3) & (x < w // 3), 220, 30)
    return np.stack([np.clip(base + 3 * t, 0, 255) for t in range(n)]).astype(np.uint8)


def _encode(path: Path, frames: np.ndarray, fps: float = 10.0, extra: tuple[str, ...] = ()) -> Path:
    n, h, w, _ = frames.shape
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
            "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", *extra, str(path), stdin=frames.tobytes())
    return path


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ---------------------------------------------------------------- rotation metadata
@pytest.fixture(scope="module")
def upright(tmp_path_factory) -> Path:
    return _encode(tmp_path_factory.mktemp("rot") / "upright.mp4", _pattern(96, 160, 6))


# ffmpeg's display rotation is counter-clockwise, like np.rot90 with k = degrees / 90
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_is_decoded_upright(upright, degrees, tmp_path):
    rotated = tmp_path / f"rot{degrees}.mp4"
    _ffmpeg("-display_rotation", str(degrees), "-i", str(upright), "-c", "copy", str(rotated))
    k = degrees // 90
    src = decode_frames(upright, range(6)).pixels
    want = np.rot90(src, k, axes=(1, 2))
    m = probe(rotated)
    assert (m.height, m.width) == want.shape[1:3]
    got = decode_frames(rotated, range(6)).pixels
    assert got.shape == want.shape and np.array_equal(got, want)
    # resized at decode time (or after, where decord refuses the size), the frame stays upright
    for size in [(64, 64), (26, 48), (48, 26), (96, 54), (224, 224)]:
        out = decode_frames(rotated, [0, 5], size=size).pixels
        assert out.shape == (2, *size, 3), size
        errs = {j: _mad(out, _resize(np.rot90(src[[0, 5]], j, axes=(1, 2)), size)) for j in range(4)}
        assert errs[k] < 8 and errs[k] == min(errs.values()), (size, errs)


# ---------------------------------------------------------------- odd and extreme sizes
@pytest.mark.parametrize("hw", [(1600, 90), (90, 1600), (720, 34), (34, 720), (250, 250), (1080, 1920)])
def test_every_requested_size_decodes(hw, tmp_path):
    h, w = hw
    path = _encode(tmp_path / f"v{w}x{h}.mp4", _pattern(h, w, 3))
    native = decode_frames(path, range(3)).pixels
    assert native.shape == (3, h, w, 3)
    thumb = (96, max(2, int(round(96 * w / h)) // 2 * 2))  # the report's thumbnails
    for size in [thumb, (224, 224), (160, 12), (160, 16), (26, 48), (7, 7), (9, 160), (333, 17)]:
        out = decode_frames(path, [0, 2], size=size).pixels
        assert out.shape == (2, *size, 3), size
        assert _mad(out, _resize(native[[0, 2]], size)) < 10, size


def test_refused_size_falls_back_for_the_whole_iteration(tmp_path):
    path = _encode(tmp_path / "tall.mp4", _pattern(1600, 90, 40))
    chunks = list(iter_frames(path, range(40), size=(96, 4), chunk=8))
    assert [len(c) for c in chunks] == [8] * 5
    assert all(c.pixels.shape[1:] == (96, 4, 3) for c in chunks)


# ---------------------------------------------------------------- variable frame rate
#: presentation times the VFR file is made with: 10 frames 0.1 s apart, then 10 frames 0.5 s apart
VFR_PTS = np.array([0.1 * i for i in range(10)] + [1.0 + 0.5 * i for i in range(10)])


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "20",
            "-vf", "setpts='if(lt(N,10),N*0.1,1.0+(N-10)*0.5)/TB'", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", str(path))
    return path


def test_vfr_timestamps_are_presentation_times(vfr_video):
    assert decoding.frame_timestamps(vfr_video) == pytest.approx(VFR_PTS, abs=1.5e-3)
    assert decoding.frame_timestamps(vfr_video, [3, 12, 19]) == pytest.approx(VFR_PTS[[3, 12, 19]], abs=1.5e-3)
    fr = decode_frames(vfr_video, [0, 9, 10, 15])
    assert fr.timestamps == pytest.approx(VFR_PTS[[0, 9, 10, 15]], abs=1.5e-3)
    chunks = list(iter_frames(vfr_video, range(20), chunk=7))
    assert np.concatenate([c.timestamps for c in chunks]) == pytest.approx(VFR_PTS, abs=1.5e-3)
    m = probe(vfr_video)
    assert 5.5 <= m.duration <= 6.05  # last frame starts at 5.5 s


def test_vfr_candidates_are_sampled_by_time(vfr_video):
    m = probe(vfr_video)
    idx = sample_indices(m, fps=1.0, timestamps=decoding.frame_timestamps(vfr_video))
    # the frame on screen at 0, 1, 2, ... 5 s
    want = [int(np.searchsorted(VFR_PTS, t + 1e-6, side="right") - 1) for t in range(6)]
    assert idx.tolist() == want


def test_vfr_features_carry_presentation_times(vfr_video, tmp_path):
    from vidsieve.encoders.pixel import PixelEncoder
    from vidsieve.features import extract_features

    for _ in range(2):  # computed, then read back from the cache
        f = extract_features(vfr_video, PixelEncoder(size=56, grid=14), fps=1.0, cache=tmp_path, progress=False)
        assert f.timestamps == pytest.approx(VFR_PTS[f.indices], abs=1.5e-3)
        assert f.indices.tolist() == [0, 10, 12, 14, 16, 18]


def test_constant_rate_times_are_exact(scene_video):
    assert decoding.frame_timestamps(scene_video.path).tolist() == (np.arange(90) / 10.0).tolist()


def test_frame_timestamps_checks_indices(vfr_video):
    from vidsieve import FrameIndexError

    with pytest.raises(FrameIndexError, match="has 20 frames"):
        decoding.frame_timestamps(vfr_video, [0, 20])


# ---------------------------------------------------------------- codec names
def test_webm_codec_name(tmp_path, capsys):
    path = tmp_path / "clip.webm"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "5", "-c:v", "libvpx", str(path))
    assert probe(path, codec=True).codec == "vp8"
    from vidsieve.cli import main

    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^codec\s+vp8$", out, re.M), out


def test_codec_probe_decodes_nothing(scene_video, monkeypatch):
    """Reading the codec name starts no frame reader (so no decoder is killed afterwards and
    nothing like imageio-ffmpeg's 'We had to kill ffmpeg' is printed on large files)."""

    def no_frames(*a, **k):  # pragma: no cover - called only by the old implementation
        raise AssertionError("the codec name must not be read by decoding frames")

    from vidsieve.decoding import _codec_name

    _codec_name.cache_clear()
    monkeypatch.setattr(imageio_ffmpeg, "read_frames", no_frames)
    assert probe(scene_video.path, codec=True).codec == "h264"


# ---------------------------------------------------------------- clean one-line errors
_NOISE = re.compile(r"\[\d{1,2}:\d{2}:\d{2}\]|\.cc:\d+|\.cpp:\d+|\[h264 @|0x[0-9a-f]{6,}")


@pytest.fixture(scope="module")
def corrupt_middle(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25", "-t", "8", "-c:v", "libx264", "-g", "25",
            "-pix_fmt", "yuv420p", str(good))
    data = bytearray(good.read_bytes())
    n = len(data)
    data[n // 3 : 2 * n // 3] = np.random.default_rng(0).integers(0, 256, 2 * n // 3 - n // 3, dtype=np.uint8).tobytes()
    bad = d / "corrupt_middle.mp4"
    bad.write_bytes(bytes(data))
    return bad


def test_corrupt_middle_gives_one_clean_reproducible_line(corrupt_middle, capfd):
    messages = []
    for _ in range(2):
        with pytest.raises(VideoDecodeError) as ei:
            m = probe(corrupt_middle)
            decode_frames(corrupt_middle, range(0, m.num_frames, 5))
        messages.append(str(ei.value))
    msg = messages[0]
    assert "\n" not in msg and not _NOISE.search(msg), msg
    assert str(corrupt_middle) in msg and "corrupt" in msg
    assert messages[0] == messages[1]
    err = capfd.readouterr().err
    assert "h264 @" not in err and "Invalid NAL" not in err, err


def test_open_error_has_no_decord_prefix(tmp_path):
    raw = tmp_path / "stream.h264"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "5", "-c:v", "libx264", str(raw))
    with pytest.raises(VideoDecodeError) as ei:
        probe(raw)
    assert "not a readable video" in str(ei.value) and not _NOISE.search(str(ei.value)), str(ei.value)


# ---------------------------------------------------------------- end to end
@pytest.mark.parametrize("frames", ["uniform", "ktv"])  # content-free and feature-reading
def test_pipeline_selections_carry_presentation_times(vfr_video, frames):
    from vidsieve import Budget
    from vidsieve.pipeline import Pipeline

    res = Pipeline(frames=frames, tokens="none", progress=False, cache=False).run(vfr_video, budget=Budget(frames=3, tokens=64))
    sel = res.selection
    assert sel.timestamps == pytest.approx(VFR_PTS[sel.indices], abs=1.5e-3)
    assert res.frames is not None and res.frames.timestamps == pytest.approx(VFR_PTS[res.frames.indices], abs=1.5e-3)


def test_pipeline_on_rotated_and_tall_video(upright, tmp_path):
    from vidsieve import Budget
    from vidsieve.pipeline import Pipeline

    rotated = tmp_path / "rot90.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(upright), "-c", "copy", str(rotated))
    tall = _encode(tmp_path / "tall.mp4", _pattern(1600, 90, 12))
    pipe = Pipeline(frames="ktv", tokens="none", progress=False, cache=False)
    res = pipe.run(rotated, budget=Budget(frames=2, tokens=64))
    assert res.frames is not None
    want = np.rot90(decode_frames(upright, res.frames.indices).pixels, 1, axes=(1, 2))
    assert np.array_equal(res.frames.pixels, want)
    res = pipe.run(tall, budget=Budget(frames=2, tokens=64))
    assert res.frames is not None and res.frames.pixels.shape == (2, 1600, 90, 3)


# ---------------------------------------------------------------- threaded decoding
def test_threaded_decoding_equals_sequential(tmp_path):
    path = _encode(tmp_path / "long.mp4", _pattern(48, 64, 90), extra=("-g", "12"))
    idx = list(range(0, 90, 4))
    one = list(iter_frames(path, idx, size=(32, 32), chunk=3, threads=1))
    many = list(iter_frames(path, idx, size=(32, 32), chunk=3, threads=3))
    assert [c.indices.tolist() for c in one] == [c.indices.tolist() for c in many]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(one, many))
    assert all(np.array_equal(a.timestamps, b.timestamps) for a, b in zip(one, many))
    whole = decode_frames(path, idx, size=(32, 32))
    assert np.array_equal(whole.pixels, np.concatenate([c.pixels for c in one]))
    for threads, chunk in [(2, 1), (3, 2), (4, 5)]:  # workers fill disjoint rows of one output
        par = decode_frames(path, idx, size=(32, 32), chunk=chunk, threads=threads)
        assert np.array_equal(par.pixels, whole.pixels) and np.array_equal(par.indices, whole.indices)
    from vidsieve.decoding import each_frame

    native = decode_frames(path, idx).pixels
    got = [(i, px.copy()) for i, px in each_frame(path, idx[::-1])]  # sorted, one at a time
    assert [i for i, _ in got] == idx and all(np.array_equal(px, native[j]) for j, (_, px) in enumerate(got))
    it = iter_frames(path, idx, chunk=2, threads=2)
    next(it)
    it.close()  # stopping early shuts the workers down
    from vidsieve import ParameterError

    with pytest.raises(ParameterError, match="'threads' parameter"):
        decode_frames(path, [0], threads=0)


def test_threaded_decoding_reports_a_corrupt_file_in_one_line(corrupt_middle):
    with pytest.raises(VideoDecodeError) as ei:
        decode_frames(corrupt_middle, range(0, 200, 5), chunk=4, threads=2)
    assert "\n" not in str(ei.value) and not _NOISE.search(str(ei.value)), str(ei.value)


# ---------------------------------------------------------------- key-frame candidates
def test_keyframe_candidates(tmp_path):
    from vidsieve import ParameterError
    from vidsieve.decoding import candidate_frames, keyframe_indices

    fixed_gop = ("-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "2")
    path = _encode(tmp_path / "gop25.mp4", _pattern(48, 64, 100), extra=fixed_gop)  # 10 fps, key every 2.5 s
    assert keyframe_indices(path).tolist() == [0, 25, 50, 75]
    m = probe(path)
    exact, t_exact = candidate_frames(m, fps=1.0)
    assert exact.tolist() == list(range(0, 100, 10)) and t_exact.tolist() == (exact / 10.0).tolist()
    # key frames 2.5 s apart cannot keep 1 fps: "auto" keeps the exact frames
    assert candidate_frames(m, fps=1.0, source="auto")[0].tolist() == exact.tolist()
    assert candidate_frames(m, fps=1.0, source="keyframes")[0].tolist() == [0, 25, 50, 75]
    # at one frame per 2.5 s the key frames are the exact candidates
    assert candidate_frames(m, fps=0.4, source="auto")[0].tolist() == candidate_frames(m, fps=0.4)[0].tolist() == [0, 25, 50, 75]
    assert candidate_frames(m, fps=0.4, source="keyframes", max_frames=2)[0].tolist() == [0, 75]
    with pytest.raises(ParameterError, match="'source' parameter"):
        candidate_frames(m, fps=1.0, source="iframes")


def test_keyframe_candidate_features_match_exact_ones_when_sets_agree(tmp_path):
    from vidsieve.encoders.pixel import PixelEncoder
    from vidsieve.features import extract_features

    gop = ("-g", "10", "-keyint_min", "10", "-sc_threshold", "0")
    path = _encode(tmp_path / "gop10.mp4", _pattern(48, 64, 60), extra=gop)  # a key frame every second
    enc = PixelEncoder(size=56, grid=14)
    a = extract_features(path, enc, fps=1.0, cache=False, progress=False, decode_threads=1)
    b = extract_features(path, enc, fps=1.0, cache=False, progress=False, candidates="auto", decode_threads=2)
    assert a.indices.tolist() == b.indices.tolist() == list(range(0, 60, 10))
    assert np.array_equal(a.embeddings, b.embeddings) and np.array_equal(a.timestamps, b.timestamps)


def test_single_frame_video(tmp_path):
    path = _encode(tmp_path / "one.mp4", _pattern(48, 64, 1))
    m = probe(path)
    assert m.num_frames == 1 and m.duration > 0
    assert decoding.frame_timestamps(path).tolist() == [0.0]
    assert decode_frames(path, [0], size=(20, 30)).pixels.shape == (1, 20, 30, 3)
