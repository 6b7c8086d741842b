"""aot: anchors + optimal transport within frames and across clips."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from vidsieve.errors import ParameterError
from vidsieve.testing import check_token_selector, make_token_input
from vidsieve.tokens.aot import AOTSelector, masked_quantile, select_anchors
from vidsieve.tokens.base import TokenInput


@pytest.mark.parametrize("params", [{}, {"mode": "paper"}, {"clip_len": 2}, {"mode": "paper", "clip_len": 1}])
def test_common_checks(params: dict) -> None:
    check_token_selector(AOTSelector(**params))


def _capture(sel: AOTSelector) -> list:
    """Record every Sinkhorn call (cost and result) the selector makes."""
    calls: list = []
    inner = sel._sinkhorn

    def spy(cost, rows, cols):  # noqa: ANN001, ANN202
        res = inner(cost, rows, cols)
        calls.append((cost.clone(), rows.clone(), cols.clone(), res))
        return res

    sel._sinkhorn = spy  # type: ignore[method-assign]
    return calls


def _toy() -> TokenInput:
    # 1 x 4 grid; anchors will be cells 0 (local: shallow) and 3 (global: deep)
    x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    return TokenInput(
        tokens=x.float().reshape(1, 1, 4, 2),
        allotment=np.array([2]),
        attention={5: torch.tensor([[1.0, 0.0, 0.0, 0.0]]), -2: torch.tensor([[0.0, 0.0, 0.0, 1.0]])},
    )


def _toy_cost() -> tuple[np.ndarray, np.ndarray]:
    x = _toy().tokens.double().reshape(4, 2).numpy()
    xs, xa = x[[1, 2]], x[[0, 3]]
    pos = np.array([0.0, 1 / 3, 2 / 3, 1.0])
    cos = (xs @ xa.T) / np.outer(np.linalg.norm(xs, axis=1), np.linalg.norm(xa, axis=1))
    dist = np.abs(pos[[1, 2]][:, None] - pos[[0, 3]][None, :])
    return x, (1 - cos) + 0.5 * dist


def test_paper_mode_two_anchor_closed_form() -> None:
    sel = AOTSelector(mode="paper", window_grid=1, tol=1e-7, max_iter=5000, clip_len=1)
    s = sel.select(_toy())
    x, cost = _toy_cost()
    plan = ot.sinkhorn(np.full(2, 0.5), np.full(2, 0.5), cost, reg=0.1, numItermax=10000, stopThr=1e-12)
    xs, xa = x[[1, 2]], x[[0, 3]]
    load = plan.sum(0)
    want = (xa + plan.T @ xs) / (1 + load)[:, None]
    assert s.index[0].tolist() == [0, 3]
    np.testing.assert_allclose(s.embeddings[0].double().numpy(), want, atol=2e-5)
    np.testing.assert_allclose(s.extras["merge_mass"][0].numpy(), load * 2, atol=1e-4)


def test_released_mode_two_anchor_closed_form() -> None:
    s = AOTSelector(window_grid=1, clip_len=1).select(_toy())
    x, cost = _toy_cost()
    k = np.exp(-cost / 0.1)
    a = b = np.full(2, 0.5)
    r, c = np.ones(2), np.ones(2)
    for _ in range(100):  # released stop: mean |delta r| < 1e-2, checked after the c update
        r_new = a / (k @ c)
        delta = np.abs(r_new - r).mean()
        r = r_new
        c = b / (k.T @ r)
        if delta < 1e-2:
            break
    plan = r[:, None] * k * c[None, :]
    xs, xa = x[[1, 2]], x[[0, 3]]
    ot_upd = (xa + plan.T @ xs) / (1 + plan.sum(0))[:, None]
    vscan = np.stack([(xa[0] + xs[0]) / 2, (xa[1] + xs[1]) / 2])  # nearest by cosine: 1->0, 2->3
    want = 0.9 * ot_upd + 0.1 * vscan
    np.testing.assert_allclose(s.embeddings[0].double().numpy(), want, atol=2e-5)


def test_paper_plan_marginals_and_pot_agreement() -> None:
    inp = make_token_input(3, 6, 6, 8, allotment=[10, 7, 20], seed=5)
    sel = AOTSelector(mode="paper", tol=1e-4, max_iter=2000, clip_len=1)
    calls = _capture(sel)
    sel.select(inp)
    cost, rows, cols, res = calls[0]
    plan = res.plan.double()
    for f in range(3):
        r, c = rows[f], cols[f]
        pf = plan[f][r][:, c]
        assert float((pf.sum(1) - 1.0 / int(r.sum())).abs().sum()) <= 1e-4 + 1e-6
        torch.testing.assert_close(pf.sum(0), torch.full((int(c.sum()),), 1.0 / int(c.sum()), dtype=torch.float64), atol=1e-6, rtol=0)
        assert float(plan[f][~r].abs().sum()) == 0.0 and float(plan[f][:, ~c].abs().sum()) == 0.0
        cf = cost[f][r][:, c].double().numpy()
        want = ot.sinkhorn(np.full(cf.shape[0], 1 / cf.shape[0]), np.full(cf.shape[1], 1 / cf.shape[1]), cf,
                           reg=0.1, numItermax=10000, stopThr=1e-10)
        np.testing.assert_allclose(pf.numpy(), want, atol=5e-5)


def test_anchor_selection_windows_and_counts() -> None:
    g = torch.Generator().manual_seed(0)
    shallow, deep = torch.rand(2, 36, generator=g), torch.rand(2, 36, generator=g)
    m = torch.tensor([18, 12])
    anchors, local = select_anchors(shallow, deep, m, (6, 6), 3, 0.5, fill=True)
    # 6x6 grid, 3x3 windows of 2x2 cells; m=18: 9 local -> 1 per window, its shallow argmax
    win = ((torch.arange(6) // 2)[:, None] * 3 + (torch.arange(6) // 2)[None, :]).reshape(-1)
    for w_ in range(9):
        cells = torch.nonzero(win == w_)[:, 0]
        assert local[0, cells].tolist().count(True) == 1
        assert bool(local[0, cells[shallow[0, cells].argmax()]])
    assert anchors.sum(1).tolist() == [18, 12]  # paper: global fills up to m
    # global picks are the best deep scores outside the local picks
    glob = anchors[0] & ~local[0]
    assert float(deep[0][glob].min()) >= float(deep[0][~anchors[0]].max())
    # released: local share floor(12 * 0.5) = 6 -> 0 per window, global 12 - 6 = 6 anchors
    anchors_r, local_r = select_anchors(shallow, deep, m, (6, 6), 3, 0.5, fill=False)
    assert anchors_r.sum(1).tolist() == [18, 6] and int(local_r[1].sum()) == 0


def test_masked_quantile_matches_torch() -> None:
    g = torch.Generator().manual_seed(1)
    v = torch.rand(4, 9, generator=g, dtype=torch.float64)
    valid = torch.ones(4, 9, dtype=torch.bool)
    valid[1, 5:] = False
    valid[2, 1:] = False
    for q in (0.0, 0.1, 0.5, 1.0):
        got = masked_quantile(v, valid, q)
        for i in range(4):
            torch.testing.assert_close(got[i], torch.quantile(v[i][valid[i]], q))


def test_clip_stage_merges_into_first_frame_and_keeps_changed_tokens() -> None:
    inp = make_token_input(4, 6, 6, 8, allotment=[12, 12, 12, 12], seed=7)
    base = AOTSelector(mode="paper", clip_len=1).select(inp)
    s = AOTSelector(mode="paper", clip_len=2, keep_ratio=0.5).select(inp)
    assert base.counts.tolist() == [12, 12, 12, 12]
    assert s.counts[0] == 12 and s.counts[2] == 12
    assert 0 < s.counts[1] < 12 and 0 < s.counts[3] < 12
    for f in (1, 3):  # kept changed tokens are anchors with their intra-merged embeddings
        pos = {int(i): j for j, i in enumerate(base.index[f])}
        for j, i in enumerate(s.index[f].tolist()):
            assert torch.equal(s.embeddings[f][j], base.embeddings[f][pos[i]])
    assert not torch.allclose(s.embeddings[0], base.embeddings[0])
    assert torch.equal(s.index[0], base.index[0])


def test_clip_stage_closed_form_keep_nothing() -> None:
    inp = make_token_input(2, 5, 5, 6, allotment=[6, 6], seed=3)
    base = AOTSelector(mode="paper", clip_len=1, tol=1e-7, max_iter=5000).select(inp)
    s = AOTSelector(mode="paper", clip_len=2, keep_ratio=0.0, tol=1e-7, max_iter=5000).select(inp)
    assert s.counts.tolist() == [6, 0]
    y, src = base.embeddings[0].double(), base.embeddings[1].double()
    yn = y / y.norm(dim=1, keepdim=True)
    sn = src / src.norm(dim=1, keepdim=True)
    c_sim = 1 - (sn @ yn.T).clamp(-1 + 1e-6, 1 - 1e-6)
    c = (c_sim - c_sim.min()) * (1 - np.exp(-1 / (2 * 1.5**2)))
    plan = torch.from_numpy(ot.sinkhorn(np.full(6, 1 / 6), np.full(6, 1 / 6), c.numpy(), reg=0.1,
                                        numItermax=10000, stopThr=1e-12))
    p = plan / plan.sum(1, keepdim=True)
    want = (y + p.T @ src) / (1 + p.sum(0))[:, None]
    torch.testing.assert_close(s.embeddings[0].double(), want, atol=5e-5, rtol=0)


def test_without_attention_falls_back_or_raises() -> None:
    inp = TokenInput(tokens=torch.randn(3, 6, 6, 8), allotment=np.array([10, 10, 10]))
    s = AOTSelector().select(inp)
    assert s.extras["importance_source"] == {
        "shallow": "distinctiveness(tokens)", "deep": "distinctiveness(tokens)"
    }
    assert s.counts[0] > 0
    with pytest.raises(ParameterError, match=r"attention\[5\]"):
        AOTSelector(fallback="raise").select(inp)


def test_bad_params() -> None:
    with pytest.raises(ParameterError, match="mode"):
        AOTSelector(mode="fast")
    with pytest.raises(ParameterError, match="clip_len"):
        AOTSelector(clip_len=0)


# ------------------------------------------------------------------ public stage functions
def test_pool_anchor_mask_keeps_pooled_values_of_at_least_half() -> None:
    import torch.nn.functional as F

    from vidsieve.tokens.aot import pool_anchor_mask

    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 1, 4, 5, 10]] = True  # a full 2x2 block at the top left, one lone cell

    def pool(t: torch.Tensor) -> torch.Tensor:  # 4x4 -> 2x2 average: values 1, 0, 0, 0.25
        return F.avg_pool2d(t.reshape(1, 4, 4, -1).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1).reshape(1, 4, -1)

    assert pool_anchor_mask(mask, pool).tolist() == [[True, False, False, False]]


def test_merged_map_replaces_only_anchor_cells() -> None:
    from vidsieve.tokens.aot import merged_map

    x = torch.arange(12.0).reshape(1, 4, 3)
    cells = torch.tensor([[1, 3, 0]])
    valid = torch.tensor([[True, True, False]])
    merged = torch.full((1, 3, 3), -1.0)
    out = merged_map(x, cells, valid, merged)
    assert out[0, [1, 3]].eq(-1).all() and torch.equal(out[0, [0, 2]], x[0, [0, 2]])


def test_clip_merge_keeps_the_least_matched_share_and_moves_anchors() -> None:
    from vidsieve.tokens.aot import clip_merge

    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(2, 5, 8, generator=g)
    sources = torch.cat([anchors + 0.01 * torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)], 1)
    new, keep, plan = clip_merge(anchors, sources, torch.tensor([1.0, 2.0]), keep_ratio=0.3)
    assert new.shape == anchors.shape and keep.shape == (2, 10) and plan.shape == (2, 10, 5)
    torch.testing.assert_close(plan.sum(2), torch.ones(2, 10))
    pmax = plan.amax(2)
    for b in range(2):  # kept = below the keep_ratio quantile of max_m p(m|n)
        assert torch.equal(keep[b], pmax[b] < torch.quantile(pmax[b].double(), 0.3).float())
    assert not torch.allclose(new, anchors)


def test_released_layout_orders_anchors_residuals_merged() -> None:
    from vidsieve.tokens.aot import released_layout

    d = 2
    toks = torch.arange(3 * 3 * d, dtype=torch.float32).reshape(3, 3, d)  # 3 frames x 3 pooled anchors
    valid = torch.tensor([[True, True, False], [True, True, True], [True, False, False]])
    cells = torch.tensor([[0, 2, 0], [1, 2, 3], [2, 0, 0]])
    merged = toks.clone()
    merged[0] = -toks[0]  # the clip's merged anchors
    keep = torch.tensor([[True, True, False], [False, True, False], [True, False, False]])
    index, emb, fits = released_layout(toks, valid, cells, merged, keep, np.array([[0, 1, 2]]), n=4)
    assert fits
    seq = torch.cat(emb)
    want = torch.cat([toks[0, :2], toks[1, 1:2], toks[2, :1], -toks[0, :2]])
    assert torch.equal(seq, want)
    assert index[0].tolist() == [0, 2] and index[1].tolist() == [2]
    # the last frame holds its residual (cell 2) plus the anchor cells (0, 2 -> 2 taken: +1 free)
    assert index[2].tolist() == [0, 1, 2] and emb[2].shape[0] == 3
