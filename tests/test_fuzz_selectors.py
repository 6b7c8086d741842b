"""Property-based fuzzing of every registered frame and token selector (hypothesis).

Through the public ``select``: any input either gives a result that honours the contract or
raises a :class:`~vidsieve.errors.VidsieveError` subclass (never a numpy / torch / sklearn
traceback); finite input never yields NaN scores or embeddings; non-finite input is refused.
Example counts are bounded (``FUZZ_EXAMPLES``, default 300) and the draw sizes small enough
for CI; set ``VIDSIEVE_FUZZ_EXAMPLES`` to run longer.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidsieve
from vidsieve.errors import ParameterError, VidsieveError
from vidsieve.selectors.base import frame_cost
from vidsieve.tokens.base import TokenInput
from vidsieve.types import Budget, FrameFeatures, Query

FUZZ_EXAMPLES = int(os.environ.get("VIDSIEVE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def frame_cases(draw: st.DrawFn) -> tuple[FrameFeatures, Budget, Query | None, bool]:
    """(features, budget, query, finite): T 1..500 candidates, odd widths, duplicate rows,
    constant rows, huge/tiny scales, optional NaN/inf rows, text/embedding/no queries."""
    t = draw(st.integers(1, 500))
    d = draw(st.sampled_from([1, 2, 3, 7, 16, 33]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "scenes", "duplicates", "constant", "zeros", "huge", "tiny", "sparse"]))
    if kind == "scenes":
        k = draw(st.integers(1, 8))
        emb = rng.normal(size=(k, d))[np.minimum(np.arange(t) * k // t, k - 1)] + rng.normal(scale=0.05, size=(t, d))
    elif kind == "duplicates":
        emb = rng.normal(size=(max(t // 4, 1), d))[rng.integers(0, max(t // 4, 1), t)]
    elif kind == "constant":
        emb = np.tile(rng.normal(size=(1, d)), (t, 1))
    elif kind == "zeros":
        emb = np.zeros((t, d))
    elif kind == "sparse":
        emb = (rng.random((t, d)) < 0.1).astype(np.float64)
    else:
        emb = rng.normal(size=(t, d))
    emb = emb * {"huge": 1e19, "tiny": 1e-30}.get(kind, 1.0)
    finite = True
    if draw(st.integers(0, 9)) == 0:  # a non-finite row
        emb[rng.integers(0, t)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        finite = False
    fps = draw(st.sampled_from([0.5, 1.0, 2.0, 29.97]))
    feats = FrameFeatures.from_array(emb.astype(np.float32), fps=fps)
    if finite and not np.all(np.isfinite(feats.embeddings)):  # float32 overflow of huge values
        finite = False
    frames = draw(st.integers(1, 600))
    tokens = draw(st.one_of(st.none(), st.integers(1, 100_000)))
    qkind = draw(st.sampled_from(["none", "text", "row", "random"]))
    query: Query | None = None
    if qkind == "text":
        query = Query(text=draw(st.text(min_size=1, max_size=40)))
    elif qkind in ("row", "random"):
        q = feats.embeddings[rng.integers(0, t)] if qkind == "row" else rng.normal(size=d).astype(np.float32)
        if np.all(np.isfinite(q)) and np.any(q != 0):
            query = Query(embedding=q.astype(np.float32))
    return feats, Budget(frames=frames, tokens=tokens), query, finite


def _check_selection(name: str, sel, feats: FrameFeatures, budget: Budget) -> None:  # type: ignore[no-untyped-def]
    k = min(budget.frames, len(feats))
    cost = frame_cost(sel.downscale, len(sel))  # full-frame equivalents (F2C's reduced frames)
    assert 1 <= len(sel) <= len(feats) and cost <= k + 1e-9, f"{name}: {len(sel)} frames ({cost:.3f}) for k={k}"
    idx = sel.indices
    assert np.all(np.diff(idx) > 0), f"{name}: indices not sorted/unique"
    assert set(idx.tolist()) <= set(feats.indices.tolist()), f"{name}: indices are not candidates"
    assert np.all(np.isfinite(sel.timestamps)), f"{name}: non-finite timestamps"
    if sel.scores is not None:
        assert np.all(np.isfinite(sel.scores)), f"{name}: NaN/inf scores from finite features"
    if sel.frame_tokens is not None:
        assert np.all(sel.frame_tokens >= 0)
        if budget.tokens is not None:
            assert int(sel.frame_tokens.sum()) <= budget.tokens, f"{name}: token budget exceeded"
    if sel.downscale is not None:
        assert np.all(np.isfinite(sel.downscale)) and np.all(sel.downscale >= 1.0)


# kframes' default scene detector reads pixels (TransNetV2); the fuzz feeds bare features, so
# it runs the selector's feature-based scene rule (the one used when there is no source video)
@pytest.mark.parametrize("name", vidsieve.list_selectors())
def test_fuzz_frame_selector(name):
    selector = vidsieve.create_selector(name)

    @FUZZ
    @given(frame_cases())
    def run(case):  # type: ignore[no-untyped-def]
        feats, budget, query, finite = case
        before = feats.embeddings.copy()
        try:
            sel = selector.select(feats, budget=budget, query=query)
        except VidsieveError as e:
            if finite:
                # a finite, non-empty input must be selectable; the only accepted refusals are
                # documented parameter errors (e.g. a query of another width)
                assert isinstance(e, ParameterError), f"{name}: {type(e).__name__}: {e}"
                assert query is not None and "query" in str(e).lower(), f"{name} refused finite input: {e}"
            return
        assert finite, f"{name} accepted non-finite features"
        _check_selection(name, sel, feats, budget)
        assert np.array_equal(np.nan_to_num(feats.embeddings), np.nan_to_num(before)), f"{name} mutated input"

    run()


@st.composite
def token_cases(draw: st.DrawFn) -> tuple[TokenInput, bool]:
    f = draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    d = draw(st.sampled_from([1, 2, 5, 16]))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    kind = draw(st.sampled_from(["normal", "zeros", "constant", "duplicates", "huge"]))
    tok = torch.randn(f, h, w, d, generator=g)
    if kind == "zeros":
        tok = torch.zeros(f, h, w, d)
    elif kind == "constant":
        tok = torch.randn(1, 1, 1, d, generator=g).expand(f, h, w, d).clone()
    elif kind == "duplicates":
        tok = tok[:, :1].expand(f, h, w, d).clone()
    elif kind == "huge":
        tok = tok * 1e18
    finite = True
    if draw(st.integers(0, 9)) == 0:
        tok[0, 0, 0, 0] = float(draw(st.sampled_from([np.nan, np.inf])))
        finite = False
    n = h * w
    allot = draw(st.one_of(st.none(), st.lists(st.integers(0, 2 * n), min_size=f, max_size=f)))
    budget = draw(st.one_of(st.none(), st.integers(1, f * n + 5)))
    with_att = draw(st.booleans())
    att = {}
    if with_att:
        a = torch.rand(f, n, generator=g)
        att = {5: a, -2: torch.rand(f, n, generator=g)}
    inp = TokenInput(
        tokens=tok, allotment=None if allot is None else np.asarray(allot, np.int64), budget=budget,
        attention=att, cls_attention=torch.rand(f, n, generator=g) if with_att else None,
        pre_projector=torch.randn(f, h, w, max(d // 2, 1), generator=g) if with_att else None,
        timestamps=np.arange(f, dtype=np.float64) * draw(st.sampled_from([0.0, 0.5, 2.0])),
        downscale=np.asarray(draw(st.lists(st.sampled_from([1.0, 1.5, 2.0, 3.0]), min_size=f, max_size=f))),
    )
    return inp, finite


@pytest.mark.parametrize("name", vidsieve.list_token_selectors())
def test_fuzz_token_selector(name):
    selector = vidsieve.create_token_selector(name)

    @FUZZ
    @given(token_cases())
    def run(case):  # type: ignore[no-untyped-def]
        inp, finite = case
        before = inp.tokens.clone()
        try:
            out = selector.select(inp)
        except VidsieveError as e:
            assert not finite, f"{name} refused finite input: {type(e).__name__}: {e}"
            return
        assert finite, f"{name} accepted non-finite tokens"
        allot = inp.resolved_allotment()
        assert np.all(out.counts <= allot) and out.total <= inp.resolved_budget()
        for e in out.gather(inp.tokens):
            assert bool(torch.isfinite(e).all()), f"{name}: NaN/inf output"
        assert torch.equal(inp.tokens, before), f"{name} mutated its input"

    run()
