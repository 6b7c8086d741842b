"""KTV keyframe selector: k-means picks, nearest-frame rule, fallback, ranking, token ladders."""

from __future__ import annotations

import numpy as np
import pytest

import vidsieve
from vidsieve.errors import ParameterError
from vidsieve.selectors.ktv import KTVSelector, floor_rows, kmeans_keyframes, token_ladder
from vidsieve.selectors.uniform import linspace_rows
from vidsieve.testing import check_selector
from vidsieve.types import Budget, FrameFeatures, Query


def _clusters(centres: np.ndarray, per: int = 3, spread: float = 0.1) -> np.ndarray:
    """Each centre c gives frames c - e, c, c + e (in that order): the middle one is the mean."""
    d = centres.shape[1]
    e = np.zeros(d)
    e[0] = spread
    rows = [np.stack([c - e, c, c + e]) for c in centres]
    return np.concatenate(rows).astype(np.float32)


def test_common_checks() -> None:
    check_selector(KTVSelector())
    check_selector(KTVSelector(n_init=10, pca_dims=None, representative="members"))


def test_registered() -> None:
    assert isinstance(vidsieve.create_selector("ktv"), KTVSelector)


def test_nearest_frame_to_each_centroid() -> None:
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = _clusters(centres)
    feats = FrameFeatures.from_array(x)
    s = KTVSelector(pca_dims=None).select(feats, budget=Budget(frames=4))
    assert s.rows.tolist() == [1, 4, 7, 10]  # the middle frame of every triple
    assert s.extras["fallback"] is False


def test_matches_released_sklearn_call() -> None:
    """Released settings reproduce KMeans(k, k-means++, n_init=10, random_state=0) + argmin."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(6, 16))[rng.integers(0, 6, 120)] + rng.normal(scale=0.5, size=(120, 16))).astype(np.float32)
    km = KMeans(n_clusters=5, init="k-means++", n_init=10, random_state=0).fit(x)
    d = np.linalg.norm(x[None, :, :] - km.cluster_centers_[:, None, :], axis=2)
    expected = np.argmin(d, axis=1)
    got = kmeans_keyframes(x, 5, n_init=10, random_state=0, pca_dims=None)
    assert got.tolist() == expected.tolist()
    sel = KTVSelector(n_init=10, pca_dims=None, threads=None)
    rows = sel.select(FrameFeatures.from_array(x), budget=5).rows
    want = np.unique(expected)
    if want.size == 5:
        assert rows.tolist() == want.tolist()
    else:
        assert rows.tolist() == linspace_rows(120, 5).tolist()


class _FakeKMeans:
    """Stands in for sklearn's KMeans with fixed centres and labels."""

    centers = np.array([[0.0, 0.0], [0.0, 3.0]])
    labels = np.array([0, 0, 1, 1])

    def __init__(self, **kw: object) -> None:
        pass

    def fit(self, x: np.ndarray) -> _FakeKMeans:
        self.cluster_centers_ = self.centers
        self.labels_ = self.labels
        self.inertia_ = 0.0
        return self


def test_representative_all_vs_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """Released: nearest among ALL frames; paper: nearest among the centroid's members."""
    import sklearn.cluster

    monkeypatch.setattr(sklearn.cluster, "KMeans", _FakeKMeans)
    # cluster 0 = rows 0, 1 (spread around (0,0)); cluster 1 = rows 2, 3; row 2 sits at (0, 0.5):
    # nearer to centroid 0 than either of cluster 0's members.
    x = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 0.5], [0.0, 5.0]])
    assert kmeans_keyframes(x, 2, representative="all", solver="sklearn").tolist() == [2, 3]
    assert kmeans_keyframes(x, 2, representative="members", solver="sklearn").tolist() == [0, 3]


def test_collision_falls_back_to_uniform() -> None:
    # only two distinct frames: three centroids cannot have three distinct nearest frames.
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]], dtype=np.float32), 5, axis=0)
    feats = FrameFeatures.from_array(x)
    s = KTVSelector(pca_dims=None).select(feats, budget=3)
    assert s.extras["fallback"] is True
    assert s.rows.tolist() == linspace_rows(10, 3).tolist() == [0, 4, 9]
    s2 = KTVSelector(pca_dims=None, fallback="floor").select(feats, budget=3)
    assert s2.rows.tolist() == floor_rows(10, 3).tolist() == [0, 3, 6]


def test_pca_path_is_valid_and_full_width_pca_is_identity() -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 64))[np.repeat(np.arange(8), 30)] * 3 + rng.normal(size=(240, 64))).astype(np.float32)
    feats = FrameFeatures.from_array(x)
    a = KTVSelector(pca_dims=16).select(feats, budget=8)
    assert len(a) == 8
    # with 8 well-separated scenes both spaces find one frame per scene
    assert sorted(set((a.rows // 30).tolist())) == list(range(8))
    b = KTVSelector(pca_dims=64).select(feats, budget=8)  # pca_dims >= D: no projection
    c = KTVSelector(pca_dims=None).select(feats, budget=8)
    assert b.rows.tolist() == c.rows.tolist()


def test_rank_and_ladder_504() -> None:
    centres = np.eye(6, 8) * 10
    x = _clusters(centres)
    feats = FrameFeatures.from_array(x)
    q = Query(text="q", embedding=centres[4].astype(np.float32))
    s = KTVSelector(pca_dims=None).select(feats, budget=Budget(frames=6, tokens=504), query=q)
    assert s.rows.tolist() == [1, 4, 7, 10, 13, 16]
    assert s.extras["rank"][4] == 0  # the keyframe of the queried scene ranks first
    assert sorted(s.extras["rank"].tolist()) == list(range(6))
    assert s.frame_tokens.tolist() == [72, 72, 72, 72, 144, 72]
    assert s.extras["token_rule"] == "ladder-6-504"
    assert s.scores is not None and s.scores.shape == (18,)
    np.testing.assert_allclose(s.scores[13], 100.0, rtol=1e-6)  # 100 * cos, the centre frame itself
    np.testing.assert_allclose(s.scores[12], 100.0 * np.cos(np.arctan(0.01)), rtol=1e-6)


@pytest.mark.parametrize(
    ("total", "ladder"),
    [(504, [144, 72, 72, 72, 72, 72]), (936, [288, 144, 144, 144, 144, 72]), (1872, [576, 288, 288, 288, 288, 144])],
)
def test_released_ladders_at_576(total: int, ladder: list[int]) -> None:
    got = token_ladder(6, total, 576)
    assert got is not None and got[0].tolist() == ladder
    assert sum(ladder) == total


def test_ladder_scaled_to_tokens_per_frame() -> None:
    # 196 tokens/frame: 504 * 196/576 = 171.5 -> entries floor(l*196/576) = [49, 24 x 5] = 169.
    for b in (169, 170, 171, 172):
        got = token_ladder(6, b, 196)
        assert got is not None and got[0].tolist() == [49, 24, 24, 24, 24, 24]
    assert token_ladder(6, 173, 196) is None
    assert token_ladder(6, 168, 196) is None
    got = token_ladder(12, 1872, 576)
    assert got is not None and got[0].tolist() == [288, 288] + [144] * 8 + [72, 72]
    assert token_ladder(7, 504, 576) is None


def test_frame_tokens_within_budget_random() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 12)).astype(np.float32)
    feats = FrameFeatures.from_array(x)
    q = Query(text="q", embedding=x[7])
    for _ in range(40):
        k = int(rng.integers(1, 14))
        tpf = int(rng.choice([144, 196, 576, 729]))
        tokens = int(rng.integers(1, 5000))
        sel = KTVSelector(pca_dims=None, n_init=1, tokens_per_frame=tpf)
        s = sel.select(feats, budget=Budget(frames=k, tokens=tokens), query=q)
        assert s.frame_tokens is not None
        assert s.frame_tokens.sum() <= tokens
        assert s.frame_tokens.max() <= tpf and s.frame_tokens.min() >= 0
    # every paper/released total, scaled, stays within budget too
    for tpf in (144, 169, 196, 576, 729):
        for frames, ladders in ((6, (504, 936, 1872)), (12, (1872,))):
            for total in ladders:
                b = int(np.ceil(total * tpf / 576))
                s = KTVSelector(pca_dims=None, n_init=1, tokens_per_frame=tpf).select(
                    feats, budget=Budget(frames=frames, tokens=b), query=q
                )
                assert s.extras["token_rule"].startswith("ladder")
                assert s.frame_tokens.sum() <= b and s.frame_tokens.max() <= tpf


def test_no_query_means_no_ranking() -> None:
    x = _clusters(np.eye(6, 8) * 10)
    s = KTVSelector().select(FrameFeatures.from_array(x), budget=Budget(frames=6, tokens=504))
    assert s.extras["rank"] is None
    assert "none" in s.extras["ranking"]
    assert s.frame_tokens.tolist() == [84] * 6  # 504 // 6, no ladder without a ranking
    assert s.scores is None


def test_k_at_least_t_returns_all() -> None:
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    s = KTVSelector().select(FrameFeatures.from_array(x), budget=9)
    assert s.rows.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"n_init": 0}, "The 'n_init' parameter of KTVSelector must be an int >= 1. Got 0 instead."),
        ({"algorithm": "full"}, "The 'algorithm' parameter of KTVSelector must be one of {'lloyd', 'elkan'}. Got 'full' instead."),
        ({"pca_dims": 0}, "The 'pca_dims' parameter of KTVSelector must be an int >= 1 or None. Got 0 instead."),
        ({"representative": "x"}, "'representative' parameter of KTVSelector"),
        ({"fallback": "x"}, "'fallback' parameter of KTVSelector"),
        ({"tokens_per_frame": 0}, "'tokens_per_frame' parameter of KTVSelector"),
        ({"random_state": -1}, "'random_state' parameter of KTVSelector"),
        ({"threads": 0}, "'threads' parameter of KTVSelector"),
        ({"max_iter": 0}, "'max_iter' parameter of KTVSelector"),
    ],
)
def test_parameter_errors(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ParameterError) as e:
        KTVSelector(**kw)  # type: ignore[arg-type]
    assert msg in str(e.value)


def test_nearest_rows_equals_float64_argmin_with_ties_to_lowest_row() -> None:
    from vidsieve.selectors.ktv import nearest_rows

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 48)).astype(np.float32)
    x[200] = x[17]  # exact duplicate: the tie goes to row 17
    centers = np.vstack([x[17] + 1e-3, rng.normal(size=(4, 48))])
    xf, cf = x.astype(np.float64), centers.astype(np.float64)
    brute = np.argmin(((xf[None] - cf[:, None]) ** 2).sum(-1), axis=1)
    got = nearest_rows(x, centers)
    assert got.tolist() == brute.tolist() and got[0] == 17
    assert nearest_rows(x.astype(np.float64), centers).tolist() == brute.tolist()
    allowed = np.zeros((5, 300), dtype=bool)
    allowed[:, 250:] = True
    allowed[4] = False  # no frame allowed: row 0
    masked = nearest_rows(x, centers, allowed)
    assert masked[:4].tolist() == (250 + np.argmin(((xf[None, 250:] - cf[:4, None]) ** 2).sum(-1), axis=1)).tolist()
    assert masked[4] == 0


def test_nearest_rows_exact_where_float32_rounding_is_larger_than_the_gaps() -> None:
    """Large common offset, tiny differences: float32 norms and products alone would pick
    wrong rows; the error bound sends every close call to float64."""
    from vidsieve.selectors.ktv import nearest_rows

    rng = np.random.default_rng(9)
    x = (300.0 + rng.normal(scale=1e-3, size=(500, 64))).astype(np.float32)
    centers = x[rng.integers(0, 500, 7)].astype(np.float64) + rng.normal(scale=4e-4, size=(7, 64))
    xf = x.astype(np.float64)
    brute = np.argmin(((xf[None] - centers[:, None]) ** 2).sum(-1), axis=1)
    assert nearest_rows(x, centers).tolist() == brute.tolist()
