"""ktv-tokens: KTV's per-frame top-k of importance and low redundancy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsieve.errors import ParameterError
from vidsieve.testing import check_token_selector, make_token_input
from vidsieve.tokens.base import TokenInput
from vidsieve.tokens.ktv_tokens import KTVTokenSelector


@pytest.mark.parametrize(
    "params",
    [{}, {"alpha": 0.85}, {"importance": "distinctiveness"}, {"importance": "attention", "attention_layer": 5}],
)
def test_common_checks(params: dict) -> None:
    check_token_selector(KTVTokenSelector(**params))


def _toy(importance: list[float]) -> dict:
    # 2x2 grid: tokens 0-2 identical (redundancy 2/3 each), token 3 orthogonal (redundancy 0)
    tokens = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 2, 2)
    return {"tokens": tokens, "allotment": np.array([2]), "cls_attention": torch.tensor([importance])}


@pytest.mark.parametrize(("alpha", "expected"), [(0.2, [1, 3]), (0.9, [1, 2]), (0.0, [0, 3]), (1.0, [1, 2])])
def test_topk_on_known_importance_and_redundancy(alpha: float, expected: list[int]) -> None:
    # minmax(importance) = [0, 1, .5, 0]; 1 - minmax(redundancy) = [0, 0, 0, 1]
    # alpha 0.2 -> [0, .2, .1, .8]; alpha 0.9 -> [0, .9, .45, .1];
    # alpha 0 -> [0, 0, 0, 1] (tie among 0-2 -> lowest index); alpha 1 -> importance only
    sel = KTVTokenSelector(alpha=alpha).select(TokenInput(**_toy([0.0, 1.0, 0.5, 0.0])))
    assert sel.index[0].tolist() == expected
    assert sel.embeddings is None
    assert sel.extras["importance_source"] == "cls_attention"


def test_redundancy_closed_form_scores() -> None:
    sel = KTVTokenSelector(alpha=0.2).select(TokenInput(**_toy([0.0, 1.0, 0.5, 0.0])))
    torch.testing.assert_close(sel.extras["scores"][0], torch.tensor([0.0, 0.2, 0.1, 0.8]))


def test_attention_received_used_without_cls() -> None:
    toy = _toy([0.0, 0.0, 0.0, 0.0])
    del toy["cls_attention"]
    toy["attention"] = {-2: torch.tensor([[0.0, 0.0, 1.0, 0.0]]), 5: torch.tensor([[1.0, 0.0, 0.0, 0.0]])}
    s = KTVTokenSelector(alpha=0.9).select(TokenInput(**toy))
    assert s.index[0].tolist() == [2, 3]
    assert s.extras["importance_source"] == "attention[-2]"
    s5 = KTVTokenSelector(alpha=0.9, attention_layer=5).select(TokenInput(**toy))
    assert s5.index[0].tolist() == [0, 3]


def test_pre_projector_drives_redundancy() -> None:
    toy = _toy([0.0, 0.0, 0.0, 0.0])
    # before the projector token 0 is the odd one out
    toy["pre_projector"] = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]).reshape(1, 2, 2, 2)
    s = KTVTokenSelector(alpha=0.0).select(TokenInput(**{**toy, "allotment": np.array([1])}))
    assert s.index[0].tolist() == [0]
    assert s.extras["redundancy_source"] == "pre_projector"
    s = KTVTokenSelector(alpha=0.0, redundancy_source="tokens").select(
        TokenInput(**{**toy, "allotment": np.array([1])})
    )
    assert s.index[0].tolist() == [3]


def test_fallback_without_attention_uses_norm() -> None:
    tokens = torch.zeros(1, 1, 4, 3)
    tokens[0, 0, :, 0] = torch.tensor([1.0, 5.0, 2.0, 3.0])  # parallel: equal redundancy
    s = KTVTokenSelector(alpha=0.5).select(TokenInput(tokens=tokens, allotment=np.array([2])))
    assert s.index[0].tolist() == [1, 3]
    assert s.extras["importance_source"] == "norm(tokens)"


def test_forced_missing_sources_raise() -> None:
    inp = TokenInput(tokens=torch.randn(2, 3, 3, 4), allotment=np.array([2, 2]))
    with pytest.raises(ParameterError, match="cls_attention"):
        KTVTokenSelector(importance="cls").select(inp)
    with pytest.raises(ParameterError, match=r"attention\[-2\]"):
        KTVTokenSelector(importance="attention").select(inp)
    with pytest.raises(ParameterError, match="pre_projector"):
        KTVTokenSelector(redundancy_source="pre_projector").select(inp)
    with pytest.raises(ParameterError, match="alpha"):
        KTVTokenSelector(alpha=1.5)


def test_per_frame_allotment_and_raster_order() -> None:
    inp = make_token_input(3, 6, 5, 16, allotment=[10, 4, 30], seed=1)
    s = KTVTokenSelector().select(inp)
    assert s.counts.tolist() == [10, 4, 30]
    for f, idx in enumerate(s.index):
        assert torch.equal(idx, torch.sort(idx).values)
        # the kept tokens are exactly the frame's top scores
        scores = s.extras["scores"][f]
        kept = scores[idx]
        dropped = scores[[i for i in range(30) if i not in set(idx.tolist())]]
        if dropped.numel():
            assert float(kept.min()) >= float(dropped.max())


def test_cls_logits_is_the_full_width_scaled_dot_product() -> None:
    from vidsieve.tokens.ktv_tokens import cls_logits

    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    want = torch.stack([k[b] @ q[b, 0] for b in range(2)]) / 8**0.5
    torch.testing.assert_close(cls_logits(q, k), want)
    torch.testing.assert_close(cls_logits(q, k, hidden_size=2), want * 2.0)
    with pytest.raises(ParameterError):
        cls_logits(q, k[:, :3])


def test_frame_budgets_ladder_by_rank_and_even_split() -> None:
    from vidsieve.tokens.ktv_tokens import frame_budgets

    rank = np.array([2, 0, 1, 3, 4, 5])
    assert frame_budgets(rank, 504, 576).tolist() == [72, 144, 72, 72, 72, 72]
    assert frame_budgets(rank, 126, 144).tolist() == [18, 36, 18, 18, 18, 18]  # scaled to 144 per frame
    assert frame_budgets(np.arange(4), 100, 144).tolist() == [25, 25, 25, 25]
    assert frame_budgets(np.arange(4), 3, 144).sum() == 3
    with pytest.raises(ParameterError):
        frame_budgets(None, 10, 144)
