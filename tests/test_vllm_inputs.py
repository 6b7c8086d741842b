"""Client-side frame selection for vLLM: the (frames, metadata) tuple and the OpenAI request.

No vLLM here: the metadata is checked against the rules the Hugging Face Qwen processors
apply to it (transformers is in the dev environment), the frames against an independent
decode of the same source indices, the request by decoding its data URL back.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

import vidsieve
from vidsieve.decoding import decode_frames
from vidsieve.errors import ParameterError
from vidsieve.types import Budget, Frames
from vidsieve.vllm import chat_request, jpeg_data_url, prepare_video, video_input
from vidsieve.vllm.inputs import frame_size_for_tokens, target_tokens


def test_tuple_has_source_indices_and_fps(scene_video):
    frames, md = video_input(scene_video.path, frames="uniform", budget=4)
    assert set(md) == {"total_num_frames", "fps", "duration", "frames_indices", "do_sample_frames", "video_backend"}
    assert md["total_num_frames"] == 90 and md["fps"] == pytest.approx(10.0)
    assert md["duration"] == pytest.approx(9.0) and md["do_sample_frames"] is False
    idx = md["frames_indices"]
    assert len(idx) == 4 and all(isinstance(i, int) for i in idx) and idx == sorted(set(idx))
    assert idx[-1] > 60  # source frame numbers, not positions among the 1-fps candidates
    ref = decode_frames(scene_video.path, np.array(idx))
    assert frames.dtype == np.uint8 and frames.shape == (4, 96, 128, 3)
    assert np.array_equal(frames, ref.pixels)


def test_query_agnostic_keyframes_on_a_file(scene_video):
    v = prepare_video(scene_video.path, frames="ktv", budget=4)
    assert v.metadata["frames_indices"] == v.selection.indices.tolist()
    # one keyframe per scene: KTV's k-means on 4 distinct looks
    scene_of = np.searchsorted(scene_video.starts, v.selection.indices, side="right") - 1
    assert sorted(scene_of.tolist()) == [0, 1, 2, 3]


def test_array_input_uses_its_rate():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (20, 56, 56, 3), dtype=np.uint8)
    frames, md = video_input(arr, frames="uniform", budget=5, video_fps=4.0)
    assert md["fps"] == 4.0 and md["total_num_frames"] == 20 and md["duration"] == pytest.approx(5.0)
    assert np.array_equal(frames, arr[md["frames_indices"]])


def test_qwen_processors_read_the_metadata_truthfully():
    """Qwen3-VL timestamps and Qwen2.5-VL spacing follow the chosen frames' source positions."""
    transformers = pytest.importorskip("transformers")
    vp = transformers.Qwen3VLVideoProcessor()
    arr = np.random.default_rng(1).integers(0, 255, (100, 64, 64, 3), dtype=np.uint8)
    frames = Frames(arr[[3, 10, 60, 90]], np.array([3, 10, 60, 90]), np.array([3, 10, 60, 90]) / 10.0)
    _, md = video_input(frames, frames="uniform", budget=4, video_fps=10.0)
    # the rule of the Qwen3-VL processor: frames_indices / fps, averaged per temporal pair
    proc = transformers.Qwen3VLProcessor.__new__(transformers.Qwen3VLProcessor)
    ts = proc._calculate_timestamps(md["frames_indices"], md["fps"], vp.merge_size)
    assert ts == pytest.approx([(0.3 + 1.0) / 2, (6.0 + 9.0) / 2])
    # Qwen2.5-VL: second_per_grid_ts = 2 / sampled_fps, sampled_fps = K / total * fps
    meta = transformers.video_utils.VideoMetadata(**{k: v for k, v in md.items() if k != "do_sample_frames"})
    assert meta.sampled_fps == pytest.approx(4 / 91 * 10.0)


def test_token_budget_becomes_one_resize(scene_video):
    """Budget.tokens caps the total: all frames resized to one size (vLLM has one size per video)."""
    v = prepare_video(scene_video.path, frames="uniform", budget=Budget(frames=8, tokens=16))
    k, h, w, _ = v.frames.shape
    assert k == 8 and h % 28 == 0 and w % 28 == 0
    assert (k // 2) * (h // 28) * (w // 28) <= 16
    assert v.mm_processor_kwargs == {"size": {"shortest_edge": 784, "longest_edge": h * w}}
    # the processor keeps the frames at that size with these kwargs
    transformers = pytest.importorskip("transformers")
    out = transformers.Qwen2VLVideoProcessor()(
        videos=[v.frames], video_metadata=[{k_: v.metadata[k_] for k_ in ("total_num_frames", "fps", "frames_indices")}],
        do_sample_frames=False, return_tensors="pt", **v.mm_processor_kwargs,
    )
    t, gh, gw = out["video_grid_thw"][0].tolist()
    assert (t, gh * 14, gw * 14) == (4, h, w)


def test_qwen3_bounds_cover_the_whole_video():
    transformers = pytest.importorskip("transformers")
    arr = np.random.default_rng(2).integers(0, 255, (30, 128, 192, 3), dtype=np.uint8)
    v = prepare_video(arr, frames="uniform", budget=Budget(frames=6, tokens=18), model="qwen3-vl", video_fps=5.0)
    k, h, w, _ = v.frames.shape
    assert (k // 2) * (h // 32) * (w // 32) <= 18 and h % 32 == 0 and w % 32 == 0
    out = transformers.Qwen3VLVideoProcessor()(
        videos=[v.frames], video_metadata=[{k_: v.metadata[k_] for k_ in ("total_num_frames", "fps", "frames_indices")}],
        do_sample_frames=False, return_tensors="pt", **v.mm_processor_kwargs,
    )
    t, gh, gw = out["video_grid_thw"][0].tolist()
    assert (t, gh * 16, gw * 16) == (3, h, w)


def test_allotments_and_downscales_set_the_total():
    sel = vidsieve.Selection(
        indices=np.arange(4), timestamps=np.arange(4.0), rows=np.arange(4), selector="x", params={},
        frame_tokens=np.array([10, 2, 2, 10]),
    )
    assert target_tokens(sel, Budget(frames=4), native_per_frame=50) == 24
    assert target_tokens(sel, Budget(frames=4, tokens=20), native_per_frame=50) == 20
    sel2 = vidsieve.Selection(
        indices=np.arange(2), timestamps=np.arange(2.0), rows=np.arange(2), selector="x", params={},
        downscale=np.array([1.0, 2.0]),
    )
    assert target_tokens(sel2, Budget(frames=2), native_per_frame=40) == 50
    assert target_tokens(sel2.__class__(**{**sel2.__dict__, "downscale": None}), Budget(frames=2), 40) is None


def test_frame_size_keeps_aspect_and_never_upsamples():
    assert frame_size_for_tokens(280, 560, 10_000, 4) == (280, 560)
    h, w = frame_size_for_tokens(280, 560, 16, 4)  # 8 tokens per group on a 10 x 20 grid
    assert (h // 28) * (w // 28) <= 8 and w >= h


def test_openai_request_round_trips(scene_video):
    v = prepare_video(scene_video.path, frames="uniform", budget=3)
    body = chat_request("qwen", v, "what happens?", max_tokens=5, seed=1)
    assert body["model"] == "qwen" and body["max_tokens"] == 5 and body["seed"] == 1
    part, text = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "what happens?"}
    url = part["video_url"]["url"]
    assert part["type"] == "video_url" and url.startswith("data:video/jpeg;base64,")
    jpgs = url.split(",", 1)[1].split(",")
    assert len(jpgs) == 3
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(j)))) for j in jpgs])
    assert decoded.shape == v.frames.shape
    assert np.abs(decoded.astype(int) - v.frames.astype(int)).mean() < 4  # JPEG q95
    io_kw = body["media_io_kwargs"]["video"]
    assert io_kw == {
        "num_frames": 3, "fps": v.metadata["fps"], "frames_indices": v.metadata["frames_indices"],
        "total_num_frames": 90, "duration": v.metadata["duration"],
    }
    assert "mm_processor_kwargs" not in body  # frames not resized


def test_bad_inputs_one_line():
    with pytest.raises(ParameterError, match="model"):
        video_input(np.zeros((4, 32, 32, 3), np.uint8), frames="uniform", budget=2, model="qwen9")
    with pytest.raises(ParameterError, match="uint8"):
        jpeg_data_url(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ParameterError, match="VLLMVideo"):
        chat_request("m", (np.zeros((1, 8, 8, 3), np.uint8), {}), "q")  # type: ignore[arg-type]
