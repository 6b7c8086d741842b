"""The released-KTV comparison of `vidsieve bench token-stages`: the restated released token
pruning (explicit L x L cosine matrix) and vidsieve's selector keep the same tokens."""

from __future__ import annotations

import torch
from vidsieve.eval.bench.aot_released import released_sinkhorn, released_window_anchors
from vidsieve.eval.bench.token_stages import aot_comparison, ktv_comparison, released_ktv_tokens


def test_ktv_comparison_rows_agree_on_kept_tokens() -> None:
    rows = ktv_comparison(frames=3, side=5, dim=16, repeats=1)
    assert len(rows) == 2
    assert all(r["same_tokens"] is True for r in rows)
    assert rows[0]["speedup_vs_released"] == 1.0 and rows[1]["speedup_vs_released"] > 0


def test_released_restatement_small_case() -> None:
    # frame 0: token 2 is a copy of token 0 (redundant), token 1 is orthogonal to both
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    imp = torch.tensor([[0.0, 0.0, 1.0]])
    # redundancy: (1 + 0)/2, (0 + 0)/2, (1 + 0)/2 -> minmax 1, 0, 1; importance minmax 0, 0, 1
    # alpha 0.5: scores 0, 0.5, 0.5 -> keep 2: tokens 1 and 2 (raster order)
    assert released_ktv_tokens(x, imp, [2], 0.5)[0].tolist() == [1, 2]


def test_aot_comparison_same_anchors_and_merged_map() -> None:
    rows = aot_comparison(frames=2, side=27, dim=8, anchors=108, repeats=1)
    assert len(rows) == 2
    assert all(r["same_tokens"] is True for r in rows)
    assert float(rows[0]["max_abs_diff"]) < 1e-4 < rows[0]["merge_shift"]


def test_released_window_anchors_take_each_windows_top() -> None:
    att = torch.zeros(1, 729)
    # the best two cells of window (row 1, col 2): raster (9 + 0) * 27 + 18 and (9 + 4) * 27 + 25
    att[0, 9 * 27 + 18] = 5.0
    att[0, 13 * 27 + 25] = 4.0
    picks = released_window_anchors(att, 18)[0].tolist()
    assert len(picks) == 18 and len(set(picks)) == 18
    win = picks[2 * 5:2 * 6]  # windows in row-major order, two picks each
    assert win == [9 * 27 + 18, 13 * 27 + 25]


def test_released_sinkhorn_column_marginals_after_its_last_update() -> None:
    g = torch.Generator().manual_seed(0)
    kernel = torch.exp(-torch.rand(3, 5, 4, generator=g) / 0.1)
    u, v = torch.full((1, 5), 0.2), torch.full((1, 4), 0.25)
    plan = released_sinkhorn(kernel, u, v)
    torch.testing.assert_close(plan.sum(dim=1), v.expand(3, 4))
