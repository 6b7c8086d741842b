"""QuoTA selector: frame-count rule, weights, drops, cap-and-redistribute, prompts, CoT parser."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import vidsieve
from vidsieve.errors import ParameterError
from vidsieve.selectors.quota import QuoTASelector, cap_weights, quota_frame_count, target_grid
from vidsieve.selectors.quota_scoring import (
    DECOUPLE_INSTRUCTIONS,
    FrameScorer,
    SimilarityScorer,
    YesNoScorer,
    decouple_query,
    decoupling_prompt,
    object_prompt,
    parse_decoupling,
    scoring_prompt,
    sufficiency_prompt,
)
from vidsieve.selectors.uniform import linspace_rows
from vidsieve.testing import check_selector
from vidsieve.types import Budget, FrameFeatures, Query


class FixedScorer:
    """A FrameScorer returning given probabilities and recording its calls."""

    def __init__(self, p: list[float]) -> None:
        self.p = np.asarray(p, dtype=np.float64)
        self.calls: list[tuple[np.ndarray, list[str] | None]] = []

    def __repr__(self) -> str:
        return f"FixedScorer({self.p.tolist()!r})"

    def score(self, features: FrameFeatures, rows: np.ndarray, *, objects: list[str] | None, query: Query | None) -> np.ndarray:
        self.calls.append((rows, objects))
        return self.p[: len(rows)]


def _feats(t: int = 4, d: int = 3, seed: int = 0) -> FrameFeatures:
    return FrameFeatures.from_array(np.random.default_rng(seed).normal(size=(t, d)).astype(np.float32))


def test_common_checks() -> None:
    check_selector(QuoTASelector())
    for m in ("affine", "minmax"):
        check_selector(QuoTASelector(similarity_map=m))


def test_registered_and_protocol() -> None:
    assert isinstance(vidsieve.create_selector("quota"), QuoTASelector)
    assert isinstance(SimilarityScorer(), FrameScorer)
    assert isinstance(FixedScorer([1.0]), FrameScorer)


def test_frame_count_rule() -> None:
    assert quota_frame_count(0.0) == 96
    assert quota_frame_count(3600.0) == 160
    assert quota_frame_count(5399.0) == 96 + int(5399 / 3600 * 64) == 191
    assert quota_frame_count(7200.0, base_frames=10, frames_per_hour=5) == 20
    # a 2-hour video of 400 candidates: 224 frames if the budget allows, else the budget.
    feats = FrameFeatures.from_array(np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32), fps=400 / 7200)
    s = QuoTASelector().select(feats, budget=Budget(frames=1000))
    assert s.extras["frame_rule_count"] == 224
    assert s.extras["sampled_rows"].tolist() == linspace_rows(400, 224).tolist()
    assert len(s) == 224  # no query: equal weights, nothing dropped
    assert len(QuoTASelector().select(feats, budget=Budget(frames=50))) == 50


def test_weights_and_drop() -> None:
    # w = (100 p)^2 normalised: p = [1, .5, .5, 0] -> [2/3, 1/6, 1/6, 0]; N_t = 60 -> [40, 10, 10, 0].
    sc = FixedScorer([1.0, 0.5, 0.5, 0.0])
    s = QuoTASelector(scorer=sc, tokens_per_frame=1000).select(_feats(), budget=Budget(frames=4, tokens=60))
    np.testing.assert_allclose(s.extras["weights"], [2 / 3, 1 / 6, 1 / 6, 0.0])
    assert s.rows.tolist() == [0, 1, 2]  # n_3 = 0 -> dropped
    assert s.frame_tokens.tolist() == [40, 10, 10]
    assert s.extras["dropped"] == 1
    # n_i = int(N_t * w_i): 0.1 * 9 -> 0 is dropped although its p > 0.
    sc2 = FixedScorer([1.0, 1.0, 0.3162277660168379])  # p^2 = [1, 1, 0.1] -> w = [1/2.1, 1/2.1, 0.1/2.1]
    s2 = QuoTASelector(scorer=sc2, tokens_per_frame=1000).select(_feats(3), budget=Budget(frames=3, tokens=9))
    assert s2.rows.tolist() == [0, 1]
    assert s2.frame_tokens.tolist() == [4, 4]  # int(9/2.1) = 4


def test_power_parameter() -> None:
    sc = FixedScorer([1.0, 0.5])
    s = QuoTASelector(scorer=sc, power=1.0, tokens_per_frame=1000).select(_feats(2), budget=Budget(frames=2, tokens=30))
    assert s.frame_tokens.tolist() == [20, 10]


def test_cap_and_redistribute() -> None:
    np.testing.assert_allclose(cap_weights(np.array([0.7, 0.2, 0.1]), 0.5), [0.5, 1 / 3, 1 / 6])
    # cascading: the first redistribution pushes the second item over the cap too.
    np.testing.assert_allclose(cap_weights(np.array([0.6, 0.3, 0.1]), 0.35), [0.35, 0.35, 0.3])
    np.testing.assert_allclose(cap_weights(np.array([5.0, 1.0]), 0.4), [0.4, 0.4])  # cap * N <= 1
    np.testing.assert_allclose(cap_weights(np.array([1.0, 0.0, 0.0]), 0.5), [0.5, 0.0, 0.0])  # zeros stay 0
    np.testing.assert_allclose(cap_weights(np.zeros(4), 1.0), [0.25] * 4)  # all zero -> equal
    with pytest.raises(ParameterError):
        cap_weights(np.array([1.0, -1.0]), 0.5)
    # in the selector: native cap 30 with N_t = 60 -> [30, 15, 15] instead of [40, 10, 10].
    sc = FixedScorer([1.0, 0.5, 0.5, 0.0])
    s = QuoTASelector(scorer=sc, tokens_per_frame=30).select(_feats(), budget=Budget(frames=4, tokens=60))
    assert s.frame_tokens.tolist() == [30, 15, 15]


def test_cap_weights_random_invariants() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        w = rng.random(n) ** 3 * (rng.random(n) > 0.2)
        cap = float(rng.uniform(0.01, 1.0))
        out = cap_weights(w, cap)
        assert np.all(out <= cap + 1e-12) and np.all(out >= 0)
        if cap * n <= 1:
            np.testing.assert_allclose(out, cap)
        elif w.sum() > 0:
            # all mass placed unless only zero-weight items had room
            room = (w > 0) & (out < cap - 1e-12)
            if room.any():
                assert abs(out.sum() - 1.0) < 1e-9
            assert np.all(out[w == 0] == 0)


def test_tokens_within_budget_random() -> None:
    rng = np.random.default_rng(2)
    for _ in range(60):
        t = int(rng.integers(1, 80))
        feats = _feats(t, 8, seed=int(rng.integers(1 << 30)))
        q = Query(text="q", embedding=rng.normal(size=8).astype(np.float32))
        tpf = int(rng.integers(1, 300))
        tokens = int(rng.integers(1, 20000))
        sel = QuoTASelector(tokens_per_frame=tpf, similarity_map=str(rng.choice(["relu", "affine", "minmax"])))
        s = sel.select(feats, budget=Budget(frames=int(rng.integers(1, 100)), tokens=tokens), query=q)
        assert 1 <= len(s) and s.frame_tokens.sum() <= tokens
        assert s.frame_tokens.max() <= tpf and s.frame_tokens.min() >= 1
        assert np.all(s.extras["grids"].prod(axis=1) <= s.frame_tokens)


def test_all_dropped_keeps_best_frame() -> None:
    sc = FixedScorer([0.2, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    s = QuoTASelector(scorer=sc).select(_feats(8), budget=Budget(frames=8, tokens=2))
    assert s.rows.tolist() == [1] and s.frame_tokens.tolist() == [2]


def test_no_token_budget_gives_native_tokens() -> None:
    s = QuoTASelector(scorer=FixedScorer([1.0, 0.1, 0.5])).select(_feats(3), budget=3)
    assert s.frame_tokens.tolist() == [196, 196, 196]


def test_similarity_scorer_mappings() -> None:
    ang = np.array([0.0, np.pi / 3, np.pi / 2, 2 * np.pi / 3])  # cos = 1, .5, 0, -.5
    x = np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)
    feats = FrameFeatures.from_array(x)
    q = Query(text="q", embedding=np.array([1.0, 0.0], np.float32))
    rows = np.arange(4)
    np.testing.assert_allclose(SimilarityScorer().score(feats, rows, objects=None, query=q), [1, 0.5, 0, 0], atol=1e-7)
    np.testing.assert_allclose(
        SimilarityScorer(mapping="affine").score(feats, rows, objects=None, query=q), [1, 0.75, 0.5, 0.25], atol=1e-7
    )
    np.testing.assert_allclose(
        SimilarityScorer(mapping="minmax").score(feats, rows, objects=None, query=q), [1, 2 / 3, 1 / 3, 0], atol=1e-7
    )
    np.testing.assert_allclose(SimilarityScorer().score(feats, rows[:2], objects=None, query=None), [1, 1])
    # relu: frames at or below zero cosine get p = 0 and are dropped; cos 1 and 0.6 give
    # w = [1, 0.36] / 1.36 -> int(100 w) = [73, 26].
    x2 = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    s = QuoTASelector().select(FrameFeatures.from_array(x2), budget=Budget(frames=4, tokens=100), query=q)
    assert s.rows.tolist() == [0, 1]
    assert s.frame_tokens.tolist() == [73, 26]


def test_object_and_fallback_prompts_are_the_released_text() -> None:
    assert object_prompt(["the man in black", "woman"]) == (
        "Does the image contain any object of the man in black, woman? A. yes, B. no\n"
        "Answer with the option's letter directly."
    )
    assert sufficiency_prompt("What is he doing? A. run. B. sit.") == (
        "What is he doing? A. run. B. sit.\nDoes the image contain sufficient information to answer "
        "the given question? A. yes, B. no\nAnswer with the option's letter directly."
    )
    assert scoring_prompt(["cup"], "Q") == object_prompt(["cup"])
    assert scoring_prompt(None, "Q") == scoring_prompt([], "Q") == sufficiency_prompt("Q")
    with pytest.raises(ParameterError):
        object_prompt([])


def test_decoupling_prompt_snapshot() -> None:
    p = decoupling_prompt("How many cups? A. 1. B. 2.")
    assert p.startswith("How many cups? A. 1. B. 2.\nTo answer this question, please follow the following step")
    assert "    Step 3: Filter the object list provided in step 2" in p
    assert p.endswith("    Your output should be:\n    Step 1: no")
    # pinned: the released instructions, character for character (quota_pipeline.py).
    digest = hashlib.sha256(DECOUPLE_INSTRUCTIONS.encode()).hexdigest()
    assert digest == "3bba2d9c6dbdb31e7d65894c59dedea341dfba9fa149164f3d90d1aed1459f52"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('Step 1: yes\nStep 2: ["blue ballons", "long table", "video"]\nStep 3: ["blue ballons", "long table"]',
         ["blue ballons", "long table"]),
        ('Step 1: Yes\nStep 2: ["Red Car"]\nStep 3: ["Red Car", "Man"]', ["red car", "man"]),  # lower-cased
        ("Step 1: no", None),
        ("Step 1: yes\nStep 2: [\"idea\"]\nStep 3: null", None),
        ("Step 1: yes\nStep 2: [\"cup\"]", None),  # no step 3
        ("Step 1: yes\nStep 3: []", None),
        ("Step 1: yes\nStep 3: [cup, plate]", None),  # not a Python list of strings
        ("Step 1: yes\nStep 3: [__import__('os').getcwd()]", None),  # never evaluated
        ("step 1: yes step 3: [1, 'knife', '  ']", ["knife"]),
        ("I think the objects are cups.", None),
        ("Step 1: maybe\nStep 3: ['cup']", None),
    ],
)
def test_parse_decoupling(output: str, expected: list[str] | None) -> None:
    assert parse_decoupling(output) == expected


def test_decouple_query_calls_generate_with_the_prompt() -> None:
    seen: list[str] = []

    def generate(prompt: str) -> str:
        seen.append(prompt)
        return 'Step 1: yes\nStep 2: ["dog", "joy"]\nStep 3: ["dog"]'

    assert decouple_query("Where is the dog?", generate) == ["dog"]
    assert seen == [decoupling_prompt("Where is the dog?")]


def test_selector_with_cot_and_yes_no_scorer() -> None:
    prompts: list[str] = []

    def ask(features: FrameFeatures, rows: np.ndarray, prompt: str) -> np.ndarray:
        prompts.append(prompt)
        return np.linspace(1.0, 0.2, len(rows))

    feats = _feats(10, 4)
    q = Query(text="Where is the dog? A. sofa. B. bed.")
    sel = QuoTASelector(scorer=YesNoScorer(ask), generate=lambda p: "Step 1: yes\nStep 3: ['dog', 'sofa']")
    s = sel.select(feats, budget=Budget(frames=5, tokens=50), query=q)
    assert prompts == [object_prompt(["dog", "sofa"])]
    assert s.extras["objects"] == ["dog", "sofa"]
    assert s.frame_tokens[0] == s.frame_tokens.max()
    prompts.clear()
    sel2 = QuoTASelector(scorer=YesNoScorer(ask), generate=lambda p: "Step 1: no")
    sel2.select(feats, budget=Budget(frames=5, tokens=50), query=q)
    assert prompts == [sufficiency_prompt(q.text or "")]


def test_yes_no_scorer_rejects_bad_output() -> None:
    feats = _feats(4)
    q = Query(text="q")
    with pytest.raises(ParameterError):
        YesNoScorer(lambda f, r, p: np.ones(len(r) + 1)).score(feats, np.arange(4), objects=None, query=q)
    with pytest.raises(ParameterError):
        YesNoScorer(lambda f, r, p: np.full(len(r), 1.5)).score(feats, np.arange(4), objects=None, query=q)
    with pytest.raises(ParameterError):
        YesNoScorer(lambda f, r, p: np.ones(len(r))).score(feats, np.arange(4), objects=None, query=None)
    with pytest.raises(ParameterError):
        QuoTASelector(scorer=FixedScorer([2.0, 0.1, 0.1, 0.1])).select(feats, budget=4)


def test_target_grid_matches_released_rule() -> None:
    def released(n: int) -> tuple[int, int]:
        h = w = int(np.sqrt(n))
        if h * w < n:
            if (h + 1) * w <= n:
                h += 1
            elif h * (w + 1) <= n:
                w += 1
        return h, w

    n = np.arange(0, 800)
    got = target_grid(n)
    assert [tuple(g) for g in got.tolist()] == [released(int(v)) for v in n]
    assert np.all(got.prod(axis=1) <= n)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"base_frames": 0}, "The 'base_frames' parameter of QuoTASelector must be an int >= 1. Got 0 instead."),
        ({"frames_per_hour": -1}, "'frames_per_hour' parameter of QuoTASelector"),
        ({"tokens_per_frame": 0}, "'tokens_per_frame' parameter of QuoTASelector"),
        ({"power": 0}, "'power' parameter of QuoTASelector"),
        ({"scorer": "clip"}, "'scorer' parameter of QuoTASelector"),
        ({"scorer": object()}, "'scorer' parameter of QuoTASelector"),
        ({"similarity_map": "x"}, "'similarity_map' parameter of QuoTASelector"),
        ({"generate": "gpt"}, "'generate' parameter of QuoTASelector"),
    ],
)
def test_parameter_errors(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ParameterError) as e:
        QuoTASelector(**kw)  # type: ignore[arg-type]
    assert msg in str(e.value)
    with pytest.raises(ParameterError):
        SimilarityScorer(mapping="x")
