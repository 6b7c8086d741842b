"""F2C selector: watershed anchors, J(l) argmax, resolution, merging, token budget, mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vidsieve
from vidsieve.errors import ParameterError
from vidsieve.selectors.f2c import (
    F2CSelector,
    basin_peaks,
    best_clip_lengths,
    clip_windows,
    kmeans_1d,
    merge_clips,
    watershed_anchors,
)
from vidsieve.testing import check_selector
from vidsieve.types import Budget, FrameFeatures, Query


def test_common_checks() -> None:
    check_selector(F2CSelector())
    check_selector(F2CSelector(query_free="distinctiveness", s_max=3.0, k_anchor=2))


def test_registered() -> None:
    assert isinstance(vidsieve.create_selector("f2c"), F2CSelector)


def test_basin_peaks_known_curve() -> None:
    # strict interior minima at 4 and 7 -> basins [0..3], [4..6], [7..9] -> peaks 2, 6, 8.
    assert basin_peaks(np.array([0, 1, 2, 1, 0, 3, 4, 3, 5, 1.0])).tolist() == [2, 6, 8]
    # plateaus count once: minima runs start at 1 and 4 -> basins [0], [1..3], [4..6].
    assert basin_peaks(np.array([2, 1, 1, 2, 0, 0, 3.0])).tolist() == [0, 3, 6]
    assert basin_peaks(np.ones(5)).tolist() == [0]  # flat: one basin, earliest max
    assert basin_peaks(np.array([3.0, 2.0, 1.0])).tolist() == [0]  # monotone: no interior minimum
    assert basin_peaks(np.array([0.5])).tolist() == [0]


def test_kmeans_1d() -> None:
    x = np.array([0, 1, 2, 10, 11, 12, 30.0])
    assert kmeans_1d(x, 3).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert kmeans_1d(x, 1).tolist() == [0] * 7
    assert kmeans_1d(x, 7).tolist() == list(range(7))


def test_watershed_anchors_thin_by_time_clusters() -> None:
    r = np.zeros(100)
    r[[10, 12, 50, 52, 90]] = [0.5, 0.8, 0.9, 0.3, 0.4]
    assert basin_peaks(r).tolist() == [10, 12, 50, 52, 90]
    anchors, n = watershed_anchors(r, 3)
    assert n == 5
    assert anchors.tolist() == [12, 50, 90]  # best of {10, 12}, {50, 52}, {90}
    anchors, n = watershed_anchors(r, 8)  # fewer candidates than asked: all of them
    assert anchors.tolist() == [10, 12, 50, 52, 90]


def test_clip_windows_centre_and_shift() -> None:
    starts = clip_windows(np.array([0, 5, 9]), np.arange(1, 5), 10)
    # l = 1..4 centred: start a - (l-1)//2, shifted into [0, 10 - l]
    assert starts.tolist() == [[0, 0, 0, 0], [5, 5, 4, 4], [9, 8, 7, 6]]


def test_j_argmax_hand_computed() -> None:
    # frames alternate between two orthogonal directions; anchor 2.
    units = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float64)
    r = np.array([0.2, 0.5, 1.0, 0.9, 0.2])
    # l=1: [2]      mean r 1.0,  redundancy 0,   length .3*1/3 -> 1.1
    # l=2: [2, 3]   mean r .95,  cos(u2,u3)=0,   length .3*2/3 -> 1.15
    # l=3: [1..3]   mean r .8,   pairs (1,3) cos 1 of 3 -> 1/3, -> .8 - .5/3 + .3 = .9333
    lengths, starts, j = best_clip_lengths(r, units, np.array([2]), 3, 3.0, 0.5, 0.3)
    np.testing.assert_allclose(j[0], [1.1, 1.15, 0.8 - 0.5 / 3 + 0.3])
    assert lengths.tolist() == [2] and starts.tolist() == [2]
    # a heavier redundancy weight on identical frames keeps the single frame
    same = np.ones((5, 2)) / np.sqrt(2)
    lengths, _, j = best_clip_lengths(np.full(5, 0.5), same, np.array([2]), 4, 4.0, 0.5, 0.05)
    np.testing.assert_allclose(j[0], [0.5 + 0.0125, 0.5 - 0.5 + 0.025, 0.5 - 0.5 + 0.0375, 0.5 - 0.5 + 0.05])
    assert lengths.tolist() == [1]
    # without the redundancy term the length bonus grows the clip to l_cap
    lengths, _, _ = best_clip_lengths(np.full(5, 0.5), same, np.array([2]), 4, 4.0, 0.0, 0.05)
    assert lengths.tolist() == [4]


def test_merge_clips() -> None:
    st, en, s2 = merge_clips(np.array([0, 2, 5, 3]), np.array([4, 6, 8, 5]), np.array([1.0, 1.0, 4.0, 4.0]))
    # same s and sharing frames -> [0, 6); touching clips [3, 5) and [5, 8) share no frame.
    assert st.tolist() == [0, 3, 5] and en.tolist() == [6, 5, 8] and s2.tolist() == [1.0, 4.0, 4.0]
    # overlapping clips with different s stay separate
    st, en, s2 = merge_clips(np.array([0, 2]), np.array([4, 6]), np.array([1.0, 2.0]))
    assert st.tolist() == [0, 2] and en.tolist() == [4, 6]
    # chains merge transitively; a clip inside another disappears
    st, en, s2 = merge_clips(np.array([0, 3, 5, 1]), np.array([4, 6, 9, 2]), np.ones(4))
    assert st.tolist() == [0] and en.tolist() == [9]


def _random_case(rng: np.random.Generator) -> tuple[FrameFeatures, Query | None]:
    t = int(rng.integers(1, 120))
    d = int(rng.integers(2, 24))
    scenes = int(rng.integers(1, 8))
    centres = rng.normal(size=(scenes, d))
    x = centres[(np.arange(t) * scenes) // t] + rng.normal(scale=float(rng.uniform(0.05, 1.0)), size=(t, d))
    feats = FrameFeatures.from_array(x.astype(np.float32))
    q = None if rng.random() < 0.25 else Query(text="q", embedding=rng.normal(size=d).astype(np.float32))
    return feats, q


def test_token_total_within_budget_random() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        feats, q = _random_case(rng)
        tpf = int(rng.choice([1, 49, 144, 196, 576, 729]))
        s_max = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        sel = F2CSelector(
            lambda_r=float(rng.uniform(0, 1)), lambda_l=float(rng.uniform(0, 0.5)), s_max=s_max,
            k_anchor=None if rng.random() < 0.5 else int(rng.integers(1, 20)), tokens_per_frame=tpf,
            query_free=str(rng.choice(["flat", "distinctiveness"])),
        )
        frames = int(rng.integers(1, 150))
        tokens = None if rng.random() < 0.2 else int(rng.integers(1, 40 * tpf + 2))
        s = sel.select(feats, budget=Budget(frames=frames, tokens=tokens), query=q)
        # budget.frames counts full-frame equivalents: up to s_max^2 frames per budget frame
        assert 1 <= len(s) <= min(len(feats), math.floor(s_max**2 * frames + 1e-9))
        assert np.all((s.downscale >= 1.0) & (s.downscale <= s_max + 1e-12))
        big_k = s.extras["full_frames"]
        assert big_k <= frames
        # the method's own bound: sum over frames of 1/s^2 <= K full frames
        assert np.sum(1.0 / s.downscale**2) <= big_k + 1e-9 or len(s) == 1
        assert s.extras["frame_equivalents"] == pytest.approx(np.sum(1.0 / s.downscale**2))
        if tokens is not None:
            assert s.frame_tokens is not None and s.frame_tokens.sum() <= tokens
            assert s.frame_tokens.max() <= tpf
            if tokens * s_max**2 >= tpf:
                assert not s.extras["token_cut"]
                assert s.frame_tokens.sum() <= big_k * tpf + 1e-9
        else:
            assert s.frame_tokens is None
        # every selected frame takes the finest s among the clips covering it
        spans, ds = s.extras["clip_rows"], s.extras["clip_downscale"]
        for row, d in zip(s.rows, s.downscale):
            cov = ds[(spans[:, 0] <= row) & (spans[:, 1] >= row)]
            assert cov.size and d == cov.min()
        # clips with the same s never overlap
        for v in np.unique(ds):
            sp = spans[ds == v]
            sp = sp[np.argsort(sp[:, 0])]
            assert np.all(sp[1:, 0] > sp[:-1, 1])


def test_budget_mapping() -> None:
    x = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
    feats = FrameFeatures.from_array(x)
    q = Query(text="q", embedding=x[100])
    sel = F2CSelector()
    s = sel.select(feats, budget=Budget(frames=256, tokens=64 * 196), query=q)
    assert s.extras["full_frames"] == 64.0 and s.extras["k_anchor"] == 64 and s.extras["l_max"] == 4.0
    assert len(s) <= 256 and s.frame_tokens.sum() <= 64 * 196
    # frames alone: K = F full frames' worth, delivered as up to s_max^2 * F reduced frames
    s = sel.select(feats, budget=Budget(frames=16), query=q)
    assert s.extras["full_frames"] == 16.0 and s.extras["k_anchor"] == 16
    assert np.sum(1.0 / s.downscale**2) <= 16 + 1e-9 and len(s) <= 64
    # a token budget below F frames' worth is filled (K = tokens / tokens_per_frame)
    s = sel.select(feats, budget=Budget(frames=32, tokens=8 * 196), query=q)
    assert s.extras["full_frames"] == 8.0 and s.frame_tokens.sum() <= 8 * 196
    assert sel.full_frame_budget(10, Budget(frames=10, tokens=98)) == 0.5
    assert sel.full_frame_budget(10, Budget(frames=10, tokens=10**6)) == 10.0
    # a budget below one frame at s_max: one frame, allotment cut to the budget
    s = sel.select(feats, budget=Budget(frames=8, tokens=10), query=q)
    assert len(s) == 1 and s.extras["token_cut"] and s.frame_tokens.tolist() == [10]


def _relevance_video(period: float, t: int = 400, d: int = 64) -> tuple[FrameFeatures, Query, np.ndarray]:
    """Random directions orthogonal to the query plus a smooth relevance r = .5 + .3 sin(i/period)."""
    rng = np.random.default_rng(5)
    q = rng.normal(size=d)
    q /= np.linalg.norm(q)
    x = rng.normal(size=(t, d))
    x -= np.outer(x @ q, q)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rel = 0.5 + 0.3 * np.sin(np.arange(t) / period)
    x = x * np.sqrt(1 - rel[:, None] ** 2) + rel[:, None] * q
    return FrameFeatures.from_array(x.astype(np.float32)), Query(text="q", embedding=q.astype(np.float32)), rel


def test_resolution_trades_length() -> None:
    """Diverse, relevant frames: clips grow to l_max and drop to s_max; tokens stay K frames."""
    feats, q, rel = _relevance_video(period=5.0)  # ~13 peaks -> thinned to K_anchor = 8
    sel = F2CSelector(lambda_r=0.0, lambda_l=0.05)
    s = sel.select(feats, budget=Budget(frames=32, tokens=8 * 196), query=q)
    assert s.extras["full_frames"] == 8.0 and s.extras["k_anchor"] == 8
    np.testing.assert_allclose(s.scores, rel, atol=1e-5)
    assert s.extras["clip_lengths"].tolist() == [4] * 8
    np.testing.assert_allclose(s.downscale, 2.0)
    assert s.frame_tokens.tolist() == [49] * 32  # 196 / 2^2, 8 clips x 4 frames = 8 x 196 tokens
    # fewer basins than K_anchor: 7 peaks share the budget: l_max = 4*8/7, l* = 4, s^2 = 7*4/8.
    feats, q, _ = _relevance_video(period=10.0)
    s = sel.select(feats, budget=Budget(frames=32, tokens=8 * 196), query=q)
    assert s.extras["k_anchor"] == 7 and s.extras["candidates"] == 7
    np.testing.assert_allclose(s.extras["l_max"], 32 / 7)
    np.testing.assert_allclose(s.downscale, np.sqrt(3.5))
    assert s.frame_tokens.tolist() == [56] * 28 and s.frame_tokens.sum() <= 8 * 196


def test_query_free_modes() -> None:
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    feats = FrameFeatures.from_array(x)
    s = F2CSelector().select(feats, budget=Budget(frames=5))
    assert s.scores is None and "flat" in s.extras["query_free"]
    # anchors at the middles of 5 equal time bins: (i + 0.5) * 50 / 5
    assert s.extras["anchors"].tolist() == [5, 15, 25, 35, 45]
    s2 = F2CSelector(query_free="distinctiveness").select(feats, budget=Budget(frames=20))
    assert s2.scores is not None and s2.scores.shape == (50,)
    assert "distinctiveness" in s2.extras["query_free"]


def test_clips_are_source_index_spans() -> None:
    x = np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32)
    idx = np.arange(40, dtype=np.int64) * 30  # 1 fps candidates of a 30 fps video
    feats = FrameFeatures(x, idx, idx / 30.0, fps=30.0, duration=40.0)
    s = F2CSelector(lambda_r=0.0).select(feats, budget=Budget(frames=16), query=Query(text="q", embedding=x[3]))
    assert np.all(s.clips % 30 == 0)
    assert set(s.indices.tolist()) <= set(range(0, 1200, 30))
    rows_in_clips = np.concatenate([np.arange(a, b + 1) for a, b in s.extras["clip_rows"]])
    assert set(s.rows.tolist()) == set(rows_in_clips.tolist())
    assert math.isclose(s.extras["l_max"], 4.0 * 16 / s.extras["k_anchor"])


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"lambda_r": -0.1}, "The 'lambda_r' parameter of F2CSelector must be a float >= 0. Got -0.1 instead."),
        ({"lambda_l": float("nan")}, "'lambda_l' parameter of F2CSelector"),
        ({"s_max": 0.5}, "'s_max' parameter of F2CSelector"),
        ({"k_anchor": 0}, "'k_anchor' parameter of F2CSelector"),
        ({"tokens_per_frame": 0}, "'tokens_per_frame' parameter of F2CSelector"),
        ({"query_free": "none"}, "'query_free' parameter of F2CSelector"),
    ],
)
def test_parameter_errors(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ParameterError) as e:
        F2CSelector(**kw)  # type: ignore[arg-type]
    assert msg in str(e.value)


def test_frame_cap_counts_full_frame_equivalents() -> None:
    """The contract F2C is checked against (selectors.base): sum 1/s^2 <= budget.frames."""
    from vidsieve.errors import ContractError
    from vidsieve.selectors.base import SelectOutput

    class Greedy(F2CSelector):
        def _select(self, features, *, k, budget, query):  # 3 full-resolution frames for 2
            return SelectOutput(rows=np.arange(3), downscale=np.ones(3))

    feats = FrameFeatures.from_array(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    with pytest.raises(ContractError, match="worth 3.000 full frames"):
        Greedy().select(feats, budget=Budget(frames=2))

    class Quarter(F2CSelector):
        def _select(self, features, *, k, budget, query):  # 8 frames at s=2 = 2 frames' worth
            return SelectOutput(rows=np.arange(8), downscale=np.full(8, 2.0))

    assert len(Quarter().select(feats, budget=Budget(frames=2))) == 8


def _natural_features(t: int = 300, d: int = 64, shots: int = 12, seed: int = 0) -> tuple[FrameFeatures, np.ndarray]:
    """CLIP-like frame features: a direction per shot, drifting slowly inside the shot
    (camera and object motion), cosine ~0.9 between neighbours, ~0.3 between shots."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(5, t - 5), shots - 1, replace=False))
    shot = np.searchsorted(cuts, np.arange(t), side="right")
    common = rng.normal(size=d)
    centres = common * 0.6 + rng.normal(size=(shots, d))
    drift = np.cumsum(rng.normal(scale=0.08, size=(t, d)), axis=0)
    x = centres[shot] / np.linalg.norm(centres[shot], axis=1, keepdims=True) * 3 + drift + rng.normal(scale=0.3, size=(t, d))
    return FrameFeatures.from_array(x.astype(np.float32)), shot


def test_clips_have_several_frames_on_natural_features() -> None:
    feats, _ = _natural_features()
    q = Query(text="q", embedding=feats.embeddings[150] + 0.5)
    for budget in (Budget(frames=8), Budget(frames=16, tokens=8 * 196)):
        s = F2CSelector().select(feats, budget=budget, query=q)
        lengths = s.extras["clip_lengths"]
        assert lengths.mean() >= 2.5, lengths
        assert s.extras["frame_equivalents"] > 0.8 * s.extras["full_frames"]
    # the literal raw-cosine J collapses every clip to one frame: the cause of the change
    raw = F2CSelector(normalize="none").select(feats, budget=Budget(frames=8), query=q)
    assert raw.extras["clip_lengths"].tolist() == [1] * 8


@pytest.mark.parametrize("style", ["objects", "pan"])
def test_clips_cover_a_needle_event(style: str) -> None:
    """A 6-frame needle inside a moving scene: the query (the needle's object on a background
    the video never shows) finds it, and the clip around it holds several needle frames."""
    from vidsieve.encoders.pixel import PixelEncoder
    from vidsieve.synth import render_frame

    enc = PixelEncoder(size=112, grid=7)
    lens, (host, at, n) = [40, 25, 60, 30, 45], (2, 20, 6)
    frames = [render_frame(50 + j, 2 * t, (96, 128), needle=(j == host and at <= t < at + n), style=style)
              for j, length in enumerate(lens) for t in range(length)]
    first = sum(lens[:host]) + at
    needle = set(range(first, first + n))
    emb, _ = enc.encode(np.stack(frames))
    feats = FrameFeatures.from_array(emb, fps=1.0)
    q = enc.embed_query(render_frame(999, 0, (96, 128), needle=True, style=style))
    s = F2CSelector().select(feats, budget=Budget(frames=8), query=q)
    spans = s.extras["clip_rows"]
    best = max(len(needle & set(range(a, b + 1))) for a, b in spans)
    assert best >= 3, spans.tolist()
    assert len(s) > 8 and s.extras["clip_lengths"].mean() > 2  # clips, not single frames
