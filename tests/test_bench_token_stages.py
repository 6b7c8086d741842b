"""The released-KTV comparison of `vidsieve bench token-stages`: the restated released token
pruning (explicit L x L cosine matrix) and vidsieve's selector keep the same tokens."""

from __future__ import annotations

import torch
from vidsieve.eval.bench.token_stages import ktv_comparison, released_ktv_tokens


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
