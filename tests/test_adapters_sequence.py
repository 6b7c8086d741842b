"""Sequence pruning and re-padding (pure tensor code, no model)."""

from __future__ import annotations

import pytest
import torch
from vidsieve.adapters.errors import AdapterError
from vidsieve.adapters.sequence import ModelInputs, prune_sequences, text_positions, video_keep_mask

V, P = 9, 0  # video placeholder id, pad id


def test_video_keep_mask_marks_kept_cells_and_the_tail() -> None:
    keep = video_keep_mask([torch.tensor([0, 3]), torch.tensor([2])], (2, 2, 2), n_tail=1)
    assert keep.tolist() == [True, False, False, True, False, False, True, False, True]


def test_prune_sequences_cuts_every_row_and_repads_left() -> None:
    # row 0: 1 pad, text 5, 3 placeholders, text 6; row 1: text 7, 2 placeholders, text 8, 4
    ids = torch.tensor([[P, 5, V, V, V, 6], [7, V, V, 8, 4, 4]])
    att = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    pos = torch.stack([torch.arange(6) * 10, torch.arange(6) * 10 + 1])  # [B, L]
    tt = (ids == V).long() * 2
    out = prune_sequences(ids, att, pos, [torch.tensor([True, False, True]), torch.tensor([False, False])], V,
                          pad_id=P, mm_token_type_ids=tt)
    assert out["input_ids"].tolist() == [[5, V, V, 6], [7, 8, 4, 4]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert out["position_ids"].tolist() == [[10, 20, 40, 50], [1, 31, 41, 51]]
    assert out["mm_token_type_ids"].tolist() == [[0, 2, 2, 0], [0, 0, 0, 0]]
    # one row shorter than the other: left padding, position 0 there
    short = prune_sequences(ids, att, pos, [torch.tensor([True, True, True]), torch.tensor([False, False])], V)
    assert short["input_ids"].tolist() == [[5, V, V, V, 6], [P, 7, 8, 4, 4]]
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert short["position_ids"][1].tolist() == [0, 1, 31, 41, 51]


def test_prune_sequences_mrope_rows_and_keep_all_identity() -> None:
    ids = torch.tensor([[5, V, V, 6]])
    att = torch.ones_like(ids)
    pos = torch.arange(16).reshape(4, 1, 4)
    out = prune_sequences(ids, att, pos, [torch.tensor([True, True])], V)
    assert torch.equal(out["input_ids"], ids) and torch.equal(out["position_ids"], pos)
    assert "mm_token_type_ids" not in out
    cut = prune_sequences(ids, att, pos, [torch.tensor([False, True])], V)
    assert cut["position_ids"].tolist() == [[[0, 2, 3]], [[4, 6, 7]], [[8, 10, 11]], [[12, 14, 15]]]


def test_prune_sequences_refuses_a_mismatched_mask() -> None:
    ids = torch.tensor([[5, V, V, 6]])
    with pytest.raises(AdapterError, match="2 video placeholders but its video has 3"):
        prune_sequences(ids, torch.ones_like(ids), ids.clone(), [torch.ones(3, dtype=torch.bool)], V)
    with pytest.raises(AdapterError, match="keep masks"):
        prune_sequences(ids, torch.ones_like(ids), ids.clone(), [], V)


def test_text_positions_and_model_inputs() -> None:
    att = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert text_positions(att).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]
    kw = ModelInputs({"input_ids": att}, legacy_state={"x": 1})
    assert dict(**kw).keys() == {"input_ids"} and kw.legacy_state == {"x": 1} and kw.selections == []
