"""The common check suite every registered selector must pass. Third parties can run it too::

    from vidsieve.testing import check_selector
    check_selector(MySelector())

Each check raises ``AssertionError`` with a message naming the selector and what failed (or the
:class:`~vidsieve.errors.ContractError` that ``select`` itself raises for a broken result).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from .configurable import Configurable
from .errors import EmptyInputError, VidsieveError
from .selectors.base import FrameSelector, frame_cost
from .tokens.base import TokenInput, TokenSelector
from .types import Budget, FrameFeatures, Query


def _fail(sel: object, msg: str) -> AssertionError:
    return AssertionError(f"{type(sel).__name__}: {msg}")


def make_features(t: int = 48, d: int = 32, *, scenes: int = 4, seed: int = 0, fps: float = 2.0) -> FrameFeatures:
    """Synthetic candidate features ``[t, d]``: ``scenes`` clusters along time plus noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(scenes, 1), d)) * 3
    scene_of = np.minimum((np.arange(t) * max(scenes, 1)) // max(t, 1), max(scenes, 1) - 1)
    emb = centers[scene_of] + rng.normal(scale=0.3, size=(t, d))
    grid = rng.normal(size=(t, 4, 5, 6)).astype(np.float32)
    return FrameFeatures.from_array(emb.astype(np.float32), fps=fps, grid=grid)


def _query_for(features: FrameFeatures) -> Query:
    q = features.embeddings[len(features) // 3].copy()
    return Query(text="a test query", embedding=q)


def _contract_cases(selector: FrameSelector, budgets: tuple[int, ...]) -> None:
    params_before = copy.deepcopy(selector.get_params())
    cases = [(b, None) for b in budgets] + [(b, tok) for b in budgets for tok in (b * 50, max(b // 2, 1))]
    for t, query in ((48, None), (48, "q"), (37, "q"), (5, None)):
        feats = make_features(t=t, seed=t)
        q = _query_for(feats) if query else None
        emb_before = feats.embeddings.copy()
        grid_before = None if feats.grid is None else feats.grid.copy()
        ts_before = feats.timestamps.copy()
        q_before = None if q is None or q.embedding is None else q.embedding.copy()
        for b, tok in cases:
            budget = Budget(frames=b, tokens=tok)
            s1 = selector.select(feats, budget=budget, query=q)
            s2 = selector.select(feats, budget=budget, query=q)
            k = min(b, t)
            n = len(s1)
            if selector.fills_budget and n != k:
                raise _fail(selector, f"returned {n} frames for {budget} and T={t}; expected {k}.")
            cost = frame_cost(s1.downscale, n)
            if not 1 <= n <= t or cost > k + 1e-9:
                raise _fail(selector, f"returned {n} frames worth {cost:.3f} for budget {b} and T={t}.")
            idx = s1.indices
            if np.any(np.diff(idx) <= 0) or idx.min() < feats.indices[0] or idx.max() > feats.indices[-1]:
                raise _fail(selector, f"indices not sorted/unique/in range: {idx}")
            if not set(idx.tolist()) <= set(feats.indices.tolist()):
                raise _fail(selector, "indices are not candidate frames.")
            if not (np.array_equal(s1.indices, s2.indices) and _same_opt(s1.frame_tokens, s2.frame_tokens)
                    and _same_opt(s1.downscale, s2.downscale)):
                raise _fail(selector, "two identical calls gave different selections (not deterministic).")
            if not (np.array_equal(feats.embeddings, emb_before) and np.array_equal(feats.timestamps, ts_before)
                    and _same_opt(feats.grid, grid_before)):
                raise _fail(selector, "select() mutated the input features.")
            if q is not None and not _same_opt(q.embedding, q_before):
                raise _fail(selector, "select() mutated the query embedding.")
            if s1.frame_tokens is not None and tok is not None and int(s1.frame_tokens.sum()) > tok:
                raise _fail(selector, f"per-frame tokens sum to {int(s1.frame_tokens.sum())} > budget {tok}.")
            if selector.get_params() != params_before:
                raise _fail(selector, "select() changed the selector's parameters.")
            if s1.selector != selector.name:
                raise _fail(selector, f"Selection.selector is {s1.selector!r}, not {selector.name!r}.")


def check_single_frame(selector: FrameSelector) -> None:
    """T = 1 returns that frame, whatever the budget."""
    s = selector.select(make_features(t=1), budget=Budget(frames=4))
    if s.indices.tolist() != [0]:
        raise _fail(selector, f"T=1 must return that frame; got {s.indices}.")


def check_empty_input(selector: FrameSelector) -> None:
    """T = 0 raises :class:`EmptyInputError`; a bad budget is refused before the selector runs."""
    empty = FrameFeatures.from_array(np.zeros((0, 8), np.float32))
    try:
        selector.select(empty, budget=Budget(frames=2))
    except EmptyInputError:
        pass
    else:
        raise _fail(selector, "empty input did not raise EmptyInputError.")
    _expect_error(selector, lambda: selector.select(make_features(), budget=0), "budget=0")


def check_repr_round_trip(selector: Configurable) -> None:
    """``eval(repr(selector))`` rebuilds an equal selector."""
    ns = {type(selector).__name__: type(selector)}
    rebuilt = eval(repr(selector), ns)  # noqa: S307 - the repr of our own class
    if rebuilt != selector or repr(rebuilt) != repr(selector):
        raise _fail(selector, f"repr does not round-trip: {selector!r}")


def check_reads(selector: FrameSelector) -> None:
    """``reads`` is declared; a content-free selector gives the same selection on positions-only
    candidates as on full features (so the frame stage may skip decoding candidates for it)."""
    if selector.reads not in ("nothing", "features", "pixels"):
        raise _fail(selector, f"reads must be 'nothing', 'features' or 'pixels'; got {selector.reads!r}.")
    if selector.reads != "nothing":
        return
    for t, b in ((48, 5), (37, 8), (3, 8)):
        full = make_features(t=t, seed=t)
        bare = FrameFeatures.positions_only(full.indices, full.timestamps, fps=full.fps, duration=full.duration)
        a, c = selector.select(full, budget=b), selector.select(bare, budget=b)
        if not (np.array_equal(a.indices, c.indices) and _same_opt(a.frame_tokens, c.frame_tokens)):
            raise _fail(selector, "declares reads='nothing' but selects differently without frame content.")


#: values tried against each declared parameter constraint: one of them must violate it
_BAD_VALUES: tuple[object, ...] = ("not-a-valid-value", -1, 0, -0.5, 2.5, 10**9, None, True, (), float("nan"))


def check_parameter_constraints(selector: Configurable) -> None:
    """Every declared parameter constraint is enforced: a value violating it is refused at
    construction with the one-template :class:`~vidsieve.errors.ParameterError`."""
    from .errors import ParameterError

    cls = type(selector)
    for name, cons in cls._parameter_constraints.items():
        if name not in cls._param_names():
            raise _fail(selector, f"declares a constraint on {name!r}, which is not a parameter.")
        bad = next((v for v in _BAD_VALUES if not any(c.is_satisfied_by(v) for c in cons)), None)
        if bad is None:
            continue  # every probe value is acceptable (e.g. a free-form parameter)
        try:
            cls(**{**selector.get_params(), name: bad})
        except ParameterError as e:
            if f"'{name}' parameter of {cls.__name__}" not in str(e):
                raise _fail(selector, f"{name}={bad!r} was refused with another message: {e}") from None
        else:
            raise _fail(selector, f"{name}={bad!r} violates its declared constraint but was accepted.")


def frame_selector_checks(budgets: tuple[int, ...] = (1, 3, 8)) -> dict[str, Callable[[FrameSelector], None]]:
    """The named checks of the frame-selector contract, in order (one test id each)."""
    return {
        "contract": lambda s: _contract_cases(s, budgets),
        "single_frame": check_single_frame,
        "empty_input": check_empty_input,
        "repr_round_trip": check_repr_round_trip,
        "reads": check_reads,
        "parameter_constraints": check_parameter_constraints,
    }


def check_selector(selector: FrameSelector, *, budgets: tuple[int, ...] = (1, 3, 8)) -> None:
    """Run every frame-selector contract check on ``selector`` (an instance).

    Checks: determinism, exact budget, sorted unique in-range candidate indices, input and
    parameters not mutated, token budget respected, T=1, empty input, repr round-trip,
    ``reads`` honoured, declared parameter constraints enforced.
    """
    for check in frame_selector_checks(budgets).values():
        check(selector)


def _same_opt(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _expect_error(sel: object, fn: Callable[[], object], what: str) -> None:
    try:
        fn()
    except VidsieveError:
        return
    raise _fail(sel, f"{what} did not raise a clear vidsieve error.")


def make_token_input(
    f: int = 3, h: int = 6, w: int = 5, d: int = 16, *, allotment: list[int] | None = None,
    budget: int | None = None, seed: int = 0,
) -> TokenInput:
    """Synthetic token grids with attention statistics and timestamps."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(f, h, w, d, generator=g)
    att = torch.rand(f, h * w, generator=g)
    att2 = torch.rand(f, h * w, generator=g)
    return TokenInput(
        tokens=tokens,
        allotment=None if allotment is None else np.asarray(allotment, np.int64),
        budget=budget,
        attention={5: att / att.sum(-1, keepdim=True) * h * w, -2: att2 / att2.sum(-1, keepdim=True) * h * w},
        cls_attention=torch.rand(f, h * w, generator=g),
        pre_projector=torch.randn(f, h, w, d // 2, generator=g),
        timestamps=np.arange(f, dtype=np.float64) * 0.5,
        downscale=np.ones(f),
    )


def _token_contract_cases(selector: TokenSelector) -> None:
    params_before = copy.deepcopy(selector.get_params())
    for f, h, w, d, allot, budget in (
        (3, 6, 5, 16, [10, 4, 30], None),
        (4, 7, 7, 8, None, 60),
        (2, 3, 3, 4, [9, 9], 10),
        (1, 1, 1, 4, None, None),
        (5, 4, 6, 8, [0, 3, 24, 7, 1], None),
    ):
        inp = make_token_input(f, h, w, d, allotment=allot, budget=budget, seed=f * 7 + h)
        before = inp.tokens.clone()
        s1 = selector.select(inp)
        s2 = selector.select(inp)
        expected = inp.resolved_allotment()
        counts = s1.counts
        if selector.fills_budget and not np.array_equal(counts, expected):
            raise _fail(selector, f"kept {counts.tolist()} tokens; allotment {expected.tolist()}.")
        if np.any(counts > expected) or s1.total > inp.resolved_budget():
            raise _fail(selector, f"kept {counts.tolist()} > allotment {expected.tolist()}.")
        for a, b in zip(s1.index, s2.index):
            if not torch.equal(a, b):
                raise _fail(selector, "not deterministic (indices differ between two calls).")
        if (s1.embeddings is None) != (s2.embeddings is None) or (
            s1.embeddings is not None
            and s2.embeddings is not None
            and not all(torch.equal(a, b) for a, b in zip(s1.embeddings, s2.embeddings))
        ):
            raise _fail(selector, "not deterministic (embeddings differ between two calls).")
        if not torch.equal(inp.tokens, before):
            raise _fail(selector, "select() mutated the input tokens.")
        if selector.get_params() != params_before:
            raise _fail(selector, "select() changed the selector's parameters.")


def check_token_identity(selector: TokenSelector) -> None:
    """At full allotment every token is kept, bit-identical."""
    inp = make_token_input(2, 5, 4, 8, seed=3)
    full = selector.select(inp)
    n = inp.tokens_per_frame
    for f, (idx, emb) in enumerate(zip(full.index, full.gather(inp.tokens))):
        if not torch.equal(idx, torch.arange(n)):
            raise _fail(selector, "full allotment must keep every token.")
        if not torch.equal(emb, inp.tokens[f].reshape(n, -1)):
            raise _fail(selector, "full allotment must return the tokens bit-identical.")


def check_token_errors(selector: TokenSelector) -> None:
    """Empty input, 2-D tokens and a zero budget are clear vidsieve errors."""
    _expect_error(selector, lambda: selector.select(TokenInput(tokens=torch.zeros(0, 2, 2, 4))), "empty input")
    _expect_error(selector, lambda: selector.select(TokenInput(tokens=torch.zeros(2, 4))), "2-D tokens")
    _expect_error(selector, lambda: selector.select(TokenInput(tokens=torch.zeros(1, 2, 2, 4), budget=0)), "budget 0")


def token_selector_checks() -> dict[str, Callable[[TokenSelector], None]]:
    """The named checks of the token-selector contract, in order (one test id each)."""
    return {
        "contract": _token_contract_cases,
        "identity": check_token_identity,
        "errors": check_token_errors,
        "repr_round_trip": check_repr_round_trip,
        "parameter_constraints": check_parameter_constraints,
    }


def check_token_selector(selector: TokenSelector) -> None:
    """Run every token-selector contract check on ``selector`` (an instance)."""
    for check in token_selector_checks().values():
        check(selector)
