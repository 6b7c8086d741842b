"""The compare report: bounded texts in the picture and the page, full texts in the JSON, and
all-or-nothing writes."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from vidsieve.compare import run_compare
from vidsieve.report import TEXT_LIMIT, render_html, render_png, write_report
from vidsieve.report_png import MAX_WIDTH
from vidsieve.textfit import ellipsise
from vidsieve.types import Budget


@pytest.fixture(scope="module")
def long_query_result(scene_video_module):
    text = "what happens " * 8000  # ~100,000 characters
    return run_compare(scene_video_module.path, budget=Budget(frames=4), query=text,
                       selectors="uniform,ktv", progress=False, cache=False)


@pytest.fixture(scope="module")
def scene_video_module(tmp_path_factory):
    from vidsieve.synth import make_scene_video

    return make_scene_video(tmp_path_factory.mktemp("v") / "s.mp4", [12, 12, 12], fps=6.0, size=(48, 64))


def test_ellipsise_bounds_and_flattens():
    assert ellipsise("a\nb   c", 10) == "a b c"
    out = ellipsise("x" * 50, 10)
    assert len(out) == 10 and out.endswith("…")


def test_long_query_does_not_stretch_the_picture(long_query_result):
    png = render_png(long_query_result)
    w, h = Image.open(io.BytesIO(png)).size
    assert w <= MAX_WIDTH and h < 2000


def test_long_query_is_bounded_in_html_and_whole_in_json(long_query_result, tmp_path):
    page = render_html(long_query_result)
    assert len(page) < 200_000 and "characters; the whole text is in selections.json" in page
    assert ("what happens " * 100) not in page
    paths = write_report(long_query_result, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["query"]["text"] == long_query_result.query.text  # kept whole
    assert len(ellipsise(long_query_result.query.text, TEXT_LIMIT)) == TEXT_LIMIT


def test_many_thumbnails_wrap_instead_of_widening(scene_video_module):
    r = run_compare(scene_video_module.path, budget=Budget(frames=36), selectors="uniform", progress=False,
                    cache=False, fps=6.0)
    im = Image.open(io.BytesIO(render_png(r)))
    assert im.size[0] <= MAX_WIDTH
    # every chosen frame is drawn: the strip lines add up to the frame count
    assert len(r.selections["uniform"]) == 36


def test_failed_write_leaves_the_previous_report_and_no_temp_files(long_query_result, tmp_path, monkeypatch):
    old = write_report(long_query_result, tmp_path)
    before = {k: p.read_bytes() for k, p in old.items()}
    calls = {"n": 0}
    real = os.fsync

    def full_disk(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third file cannot be written
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_report(long_query_result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.png", "selections.json"]
    assert {k: p.read_bytes() for k, p in old.items()} == before


def test_picture_shows_each_selector_lane(long_query_result):
    arr = np.asarray(Image.open(io.BytesIO(render_png(long_query_result))).convert("RGB"))
    assert arr.std() > 10  # not a blank canvas


@pytest.mark.parametrize("native", [False, True])
def test_thumbnails_of_long_videos_reuse_the_frame_stage_reader(scene_video, monkeypatch, native):
    """On long videos (here: every video) the thumbnails come from the reader the frame stage
    opened, resized after decoding; otherwise from a thumbnail-size reader. Either way they
    are the chosen frames at the thumbnail height, close to each other."""
    import vidsieve.compare as cmp
    import vidsieve.decoding as dec

    monkeypatch.setattr(cmp, "NATIVE_THUMBS_FROM_FRAMES", 0 if native else 10**9)
    opened: list[object] = []
    real = dec.open_reader
    monkeypatch.setattr(dec, "open_reader", lambda p, size=None: opened.append(size) or real(p, size=size))
    dec.clear_caches()
    r = cmp.run_compare(scene_video.path, budget=Budget(frames=4), selectors="uniform", cache=False,
                        progress=False, thumb_height=48)
    assert opened == ([None] if native else [None, (48, 64)])
    assert sorted(r.thumbs) == sorted(int(i) for i in r.selections["uniform"].indices)
    ref = dec.decode_frames(scene_video.path, sorted(r.thumbs), size=(48, 64)).pixels
    got = np.stack([r.thumbs[i] for i in sorted(r.thumbs)])
    assert got.shape == ref.shape == (len(r.thumbs), 48, 64, 3)
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 8  # two resizers, same picture
