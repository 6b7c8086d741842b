"""stratified-argmax and teacher selectors."""

import numpy as np
import pytest

import vidsieve
from vidsieve import Budget, FrameFeatures, ParameterError, Query
from vidsieve.selectors.stratified import bin_middles, distinct_scores, diverse_rows, novelty_scores
from vidsieve.testing import check_selector


@pytest.mark.parametrize(
    "name,params",
    [("stratified-argmax", {}), ("stratified-argmax", {"score": "distinct"}),
     ("stratified-argmax", {"score": "novelty"}), ("stratified-argmax", {"query_free": "uniform"}),
     ("stratified-argmax", {"query_free": "distinct"}),
     ("teacher", {}), ("teacher", {"fallback": "distinct"})],
)
def test_contract(name, params):
    check_selector(vidsieve.create_selector(name, **params))


def _features_with_peaks(t=40, d=8, peaks=(3, 17, 30), seed=0):
    """Frames orthogonal-ish to a query direction except at ``peaks``."""
    rng = np.random.default_rng(seed)
    q = np.zeros(d, np.float32)
    q[0] = 1.0
    emb = rng.normal(size=(t, d)).astype(np.float32)
    emb[:, 0] = -2.0
    emb[list(peaks), 0] = 5.0
    return FrameFeatures.from_array(emb, fps=1.0), Query(text="q", embedding=q)


def test_teacher_picks_best_frame_per_bin():
    feats, q = _features_with_peaks()
    s = vidsieve.create_selector("teacher").select(feats, budget=4, query=q)
    # bins [0,10) [10,20) [20,30) [30,40): peaks 3, 17, 30 win their bins
    assert {3, 17, 30} <= set(s.indices.tolist())
    assert s.extras["score"] == "query"
    assert s.scores.min() == 0.0 and s.scores.max() == 1.0  # min-max normalised


def test_stratified_query_equals_teacher_rows():
    feats, q = _features_with_peaks(seed=3)
    a = vidsieve.create_selector("stratified-argmax").select(feats, budget=5, query=q)
    b = vidsieve.create_selector("teacher").select(feats, budget=5, query=q)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_query_free_fallbacks_are_reported():
    feats, _ = _features_with_peaks()
    s = vidsieve.create_selector("teacher").select(feats, budget=4)
    assert s.extras["fallback"].startswith("uniform")
    np.testing.assert_array_equal(s.indices, [4, 14, 24, 34])  # middles of the 4 bins
    s2 = vidsieve.create_selector("stratified-argmax").select(feats, budget=4, query="text only")
    assert s2.extras["score"] == "diverse" and "no query embedding" in s2.extras["fallback"]


def test_diverse_takes_the_new_shot_in_a_straddling_bin():
    """Shots [0,10) A, [10,13) B, [13,30) C; 3 bins [0,10) [10,20) [20,30): the middle bin
    straddles B and C. Uniform middles hit A, C, C; diverse hits A, then in bin 2 the shot
    least like A (B is orthogonal to A, C is not), then C (the only shot of bin 3)."""
    look = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], np.float32)
    shot = np.r_[np.zeros(10, int), np.ones(3, int), np.full(17, 2)]
    emb = look[shot] + 0.01 * np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    feats = FrameFeatures.from_array(emb)
    uni = vidsieve.create_selector("stratified-argmax", query_free="uniform").select(feats, budget=3)
    assert len(set(shot[uni.rows])) == 2
    div = vidsieve.create_selector("stratified-argmax").select(feats, budget=3)
    assert div.extras["score"] == "diverse"
    assert shot[div.rows].tolist() == [0, 1, 2]
    rows = diverse_rows(emb, 3)
    assert rows[0] == 4  # the middle of the first bin
    assert all(lo <= r < hi for r, (lo, hi) in zip(rows, [(0, 10), (10, 20), (20, 30)]))


def test_distinct_and_novelty_scores():
    emb = np.ones((10, 4), np.float32)
    emb[6] = [1, -1, 0, 0]  # one odd frame
    d = distinct_scores(emb)
    assert d.argmax() == 6 and d[0] == pytest.approx(d[1])
    n = novelty_scores(emb)
    assert n.argmax() == 6 and n[5] > n[0] and n[7] > n[9]
    assert novelty_scores(emb[:1]).tolist() == [0.0]
    # stratified argmax with distinct finds the odd frame
    s = vidsieve.create_selector("stratified-argmax", score="distinct").select(
        FrameFeatures.from_array(emb), budget=2)
    assert 6 in s.indices


def test_bin_middles_inside_bins():
    for t in (1, 5, 37, 100):
        for k in range(1, t + 1, max(1, t // 7)):
            m = bin_middles(t, k)
            edges = (np.arange(k + 1) * t) // k
            assert np.all((m >= edges[:-1]) & (m < edges[1:]))


def test_bad_params_use_the_template():
    with pytest.raises(ParameterError, match=r"The 'score' parameter of StratifiedArgmaxSelector must be one of"):
        vidsieve.create_selector("stratified-argmax", score="clip")
    with pytest.raises(ParameterError, match=r"The 'fallback' parameter of TeacherSelector"):
        vidsieve.create_selector("teacher", fallback=None)


def test_query_dim_mismatch_is_clear():
    feats, _ = _features_with_peaks()
    with pytest.raises(ParameterError, match="dims"):
        vidsieve.create_selector("teacher").select(feats, budget=Budget(frames=3), query=Query(embedding=np.ones(3)))


def test_diverse_skips_short_outliers_and_repeats():
    """Looks: A A A X A A | B B B B B B | A A A A A A with X a 1-frame flash and the last
    stretch a repeat of A. Bins of 6: diverse takes A, then B (not the flash X), and in the
    last bin (all A) the frame nearest the middle: a repeat cannot be avoided there."""
    look = np.eye(3, dtype=np.float32)
    seq = np.r_[[0, 0, 0, 2, 0, 0], [1] * 6, [0] * 6]
    emb = look[seq]
    rows = diverse_rows(emb, 3)
    assert seq[rows].tolist() == [0, 1, 0] and rows[1] in range(6, 12)
    # a one-frame flash in the second bin: smoothed, it is not new content; unsmoothed, it is
    flash = np.r_[[0] * 6, [0, 0, 2, 0, 0, 0], [1] * 6]
    assert flash[diverse_rows(look[flash], 3)][1] == 0
    assert flash[diverse_rows(look[flash], 3, smooth=1)][1] == 2


def test_box_smooth_matches_a_loop():
    from vidsieve.selectors.stratified import box_smooth

    x = np.random.default_rng(0).normal(size=(11, 3))
    ref = np.stack([x[max(0, i - 2): i + 3].mean(0) for i in range(11)])
    np.testing.assert_allclose(box_smooth(x, 5), ref)
