"""The one frame stage: content-free selectors decode only the chosen frames, and every
selector gets the same candidates (and so the same selection) through every entry point."""

from __future__ import annotations

import numpy as np
import pytest

import vidsieve.decoding as decoding
import vidsieve.features as features_mod
from vidsieve import Budget, ParameterError
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features
from vidsieve.pipeline import FrameStage, Pipeline
from vidsieve.registry import FRAME_SELECTORS, create_selector
from vidsieve.types import FrameFeatures, Frames


@pytest.fixture
def decoded_indices(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Records every frame index list handed to a decoder (candidates and chosen frames)."""
    import vidsieve.pipeline as pipeline_mod

    calls: list[list[int]] = []

    def spy(real):  # type: ignore[no-untyped-def]
        def call(path, indices, **kw):  # type: ignore[no-untyped-def]
            calls.append(sorted(int(i) for i in indices))
            return real(path, indices, **kw)
        return call

    real_iter = decoding.iter_frames
    monkeypatch.setattr(decoding, "iter_frames", spy(real_iter))
    monkeypatch.setattr(features_mod, "iter_frames", spy(real_iter))
    monkeypatch.setattr(pipeline_mod, "decode_frames", spy(decoding.decode_frames))
    return calls


@pytest.mark.parametrize("name", [n for n in FRAME_SELECTORS.list() if FRAME_SELECTORS.get(n).reads == "nothing"])
def test_content_free_selector_decodes_only_chosen_frames(scene_video, decoded_indices, name):
    ch = FrameStage(frames=name, cache=False).run(scene_video.path, budget=5)
    assert not ch.features.content and ch.features.embeddings.shape == (len(ch.features), 0)
    assert decoded_indices == [ch.selection.indices.tolist()]  # one decode: the chosen frames
    assert ch.frames is not None and ch.frames.indices.tolist() == ch.selection.indices.tolist()
    # the same selection as on the full candidate descriptors (same candidates, same rule)
    full = extract_features(scene_video.path, PixelEncoder(), cache=False, progress=False)
    ref = create_selector(name).select(full, budget=5)
    assert np.array_equal(ch.selection.indices, ref.indices)
    assert np.allclose(ch.selection.timestamps, ref.timestamps)


def test_content_selector_reads_candidates(scene_video, decoded_indices):
    ch = FrameStage(frames="ktv", cache=False).run(scene_video.path, budget=3)
    assert ch.features.content and len(decoded_indices) == 2  # candidates, then the chosen frames
    ref = create_selector("ktv").select(extract_features(scene_video.path, PixelEncoder(), cache=False,
                                                         progress=False), budget=3)
    assert np.array_equal(ch.selection.indices, ref.indices)


def test_decode_size_false_decodes_nothing(scene_video, decoded_indices):
    ch = FrameStage(frames="uniform").run(scene_video.path, budget=4, decode_size=False)
    assert ch.frames is None and decoded_indices == []


def test_content_reading_selector_refuses_positions_only():
    f = FrameFeatures.positions_only(np.arange(10), np.arange(10) / 5.0, fps=5.0, duration=2.0)
    assert create_selector("uniform").select(f, budget=3).indices.tolist() == [0, 4, 9]
    with pytest.raises(ParameterError, match="positions-only"):
        create_selector("ktv").select(f, budget=3)


def test_in_memory_frames_and_arrays():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 255, (12, 32, 48, 3), dtype=np.uint8)
    ch = FrameStage(frames="uniform").run(px, budget=4, video_fps=6.0)
    assert ch.selection.indices.tolist() == [0, 3, 7, 11]
    assert ch.frames is not None and np.array_equal(ch.frames.pixels, px[[0, 3, 7, 11]])
    assert np.allclose(ch.frames.timestamps, np.array([0, 3, 7, 11]) / 6.0)
    fr = Frames(pixels=px[:6], indices=np.arange(0, 60, 10), timestamps=np.arange(0, 60, 10) / 30.0)
    ch2 = FrameStage(frames="ktv").run(fr, budget=2, decode_size=(16, 24))
    assert ch2.meta.fps == pytest.approx(30.0) and ch2.frames is not None
    assert ch2.frames.pixels.shape == (2, 16, 24, 3)


@pytest.mark.parametrize(
    ("video", "match"),
    [(None, "No video given"), (np.zeros((0, 8, 8, 3), np.uint8), "no frames"),
     (np.zeros((3, 8, 8), np.uint8), "uint8 \\[T, H, W, 3\\]"), (42, "got int")],
)
def test_bad_videos_are_clear_errors(video, match):
    with pytest.raises(ParameterError, match=match):
        FrameStage().run(video, budget=2)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"fps": 0}, "'fps' parameter of FrameStage"), ({"max_frames": 0}, "'max_frames' parameter"),
     ({"frames": 3}, "'frames' parameter of FrameStage"), ({"candidates": "some"}, "'candidates' parameter"),
     ({"decode_threads": 0}, "'decode_threads' parameter")],
)
def test_bad_stage_parameters(kw, match):
    with pytest.raises(ParameterError, match=match):
        FrameStage(**kw)


def test_bad_decode_size_and_video_fps():
    px = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ParameterError, match="'decode_size' parameter"):
        FrameStage().run(px, budget=2, decode_size=(0, 10))
    with pytest.raises(ParameterError, match="'video_fps' parameter"):
        FrameStage().run(px, budget=2, video_fps=0.0)
    with pytest.raises(ParameterError, match="'decode_size' parameter"):
        Pipeline(decode_size=(0, 10))


def test_pipeline_run_needs_a_path():
    with pytest.raises(ParameterError, match="path of a video file; got None"):
        Pipeline(progress=False).run(None, budget=2)  # type: ignore[arg-type]


def test_pipeline_uniform_skips_candidate_decoding(scene_video, decoded_indices):
    res = Pipeline(frames="uniform", progress=False).run(scene_video.path, budget=Budget(frames=3))
    assert len(decoded_indices) == 1 and res.timings["encode"] == 0.0


def test_keyframe_candidates_agree_between_content_free_and_feature_paths(scene_video):
    """Both candidate paths use one sampling rule, whatever the candidate source."""
    a = FrameStage(frames="uniform", candidates="keyframes", cache=False).run(scene_video.path, budget=3,
                                                                               decode_size=False)
    full = extract_features(scene_video.path, PixelEncoder(), cache=False, progress=False, candidates="keyframes")
    assert np.array_equal(a.features.indices, full.indices)
