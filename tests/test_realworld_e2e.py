"""A rotated phone-style video, a 90x1600 video and a variable-frame-rate video through the two
user entry points, `vidsieve compare` and `vidsieve.wrap(...).generate`: frames upright, every
size decoded, timestamps the frames' presentation times (also in Qwen3-VL's prompt)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from vidsieve.adapters.tiny import qwen3_vl

import vidsieve
from vidsieve.cli import main
from vidsieve.decoding import decode_frames, frame_timestamps

from .adapters_fixtures import record_processor_calls

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
VFR_TIMES = [round(0.1 * n, 3) for n in range(10)] + [round(1.0 + 0.5 * n, 3) for n in range(10)]


def _ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], input=stdin, check=True)


def _encode(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    n, h, w, _ = frames.shape
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
            "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", str(path), stdin=frames.tobytes())
    return path


def _pattern(h: int, w: int, n: int) -> np.ndarray:
    """Asymmetric frames (every rotation looks different), brightness drifting over time."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([40 + 180 * x / max(w - 1, 1), 40 + 180 * y / max(h - 1, 1),
                     np.where((y < h // 3) & (x < w // 3), 220.0, 30.0)], axis=-1)
    return np.stack([np.clip(base + 6 * t, 0, 255) for t in range(n)]).astype(np.uint8)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("realworld")
    upright = _encode(d / "upright.mp4", _pattern(96, 160, 20))
    rotated = d / "phone_rot90.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(upright), "-c", "copy", str(rotated))
    tall = _encode(d / "tall_90x1600.mp4", _pattern(1600, 90, 20))
    vfr = d / "vfr.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "20",
            "-vf", "setpts='if(lt(N,10),N*0.1,1.0+(N-10)*0.5)/TB'", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", str(vfr))
    return {"upright": upright, "rotated": rotated, "tall": tall, "vfr": vfr}


@pytest.mark.parametrize("name", ["rotated", "tall", "vfr"])
def test_compare_reads_them_right(videos, name, tmp_path):
    out = tmp_path / "report"
    rc = main(["compare", str(videos[name]), "--frames", "4", "--fps", "4", "--selectors", "uniform,ktv",
               "--out", str(out), "--quiet", "--no-cache"])
    assert rc == 0
    data = json.loads((out / "selections.json").read_text())
    if name == "rotated":
        assert (data["video"]["width"], data["video"]["height"]) == (96, 160)  # shown upright
    if name == "tall":
        assert (data["video"]["width"], data["video"]["height"]) == (90, 1600)
    times = frame_timestamps(videos[name])
    for sel in data["selections"].values():
        np.testing.assert_allclose(sel["timestamps"], times[sel["indices"]], atol=1e-9)
    if name == "vfr":
        np.testing.assert_allclose(times, VFR_TIMES, atol=2e-3)


def _wrapped() -> Any:
    model, proc = qwen3_vl()
    return vidsieve.wrap(model, proc, frames="uniform", budget=4, cache=False), proc


def test_wrap_feeds_upright_frames_of_a_rotated_video(videos):
    vlm, _ = _wrapped()
    pv = vlm.select_frames(str(videos["rotated"]), "what is shown?")
    want = np.rot90(decode_frames(videos["upright"], pv.frames.indices).pixels, 1, axes=(1, 2))
    assert np.array_equal(pv.frames.pixels, want)
    assert isinstance(vlm.generate(pv, "what is shown?", max_new_tokens=2, do_sample=False), str)


def test_wrap_runs_a_90x1600_video(videos):
    vlm, _ = _wrapped()
    pv = vlm.select_frames(str(videos["tall"]), "what is shown?")
    assert pv.frames.pixels.shape[1:] == (1600, 90, 3)
    assert isinstance(vlm.generate(pv, "what is shown?", max_new_tokens=2, do_sample=False), str)


def test_wrap_tells_qwen3_the_true_times_of_a_vfr_video(videos, monkeypatch):
    vlm, proc = _wrapped()
    seen = record_processor_calls(proc, monkeypatch)
    vlm.generate(str(videos["vfr"]), "when does it change?", max_new_tokens=2, do_sample=False)
    st = vlm.last_stats
    idx = np.asarray(st.frame_indices[0])
    true = np.asarray(VFR_TIMES)[idx]
    md = seen[-1]["video_metadata"][0]
    told = proc._calculate_timestamps(list(md["frames_indices"]), md["fps"], 2)
    groups = true[: len(true) // 2 * 2].reshape(-1, 2).mean(1)
    np.testing.assert_allclose(told[: len(groups)], groups, atol=2e-3)
    assert not np.allclose(idx / np.float64(md["fps"]), true, atol=0.05)  # index/fps would be wrong
