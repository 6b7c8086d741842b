"""prune_video_embeds: vidsieve token selectors at vLLM's fixed retained count (no vLLM needed).

Tensors are shaped as vLLM's Qwen2.5-VL / Qwen3-VL pass them to their pruning step: one
video's embeddings ``[t * h/m * w/m, C]`` in (group, row, column) order and per-token position
rows ``[N, 4]`` (t, h, w, max width). The position oracle here is written out cell by cell,
independently of the code under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidsieve.errors import ParameterError
from vidsieve.vllm.pruning import evs_retained_count, group_allotment, prune_video_embeds

SELECTORS = ["ktv-tokens", "aot", "resize", "quota-assign", "none", "f2c-resolution"]


def video(t=3, h=8, w=12, m=2, c=24, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = t * (h // m) * (w // m)
    return torch.randn(n, c, generator=g).to(dtype), (t, h, w), m


def oracle_positions(t, h, w, m, t_step=2):
    """[N, 4] rows (t * t_step, row, col, w/m) in vLLM's token order, written cell by cell."""
    rows = [(g * t_step, r, c, w // m) for g, r, c in itertools.product(range(t), range(h // m), range(w // m))]
    return torch.tensor(rows, dtype=torch.int64)


def test_evs_rule():
    # max(L, int(L * t * (1 - q))): the first group's worth at least
    assert evs_retained_count(24, 3, 0.0) == 72
    assert evs_retained_count(24, 3, 0.5) == 36
    assert evs_retained_count(24, 3, 0.9) == 24
    assert evs_retained_count(10, 3, 0.75) == 10
    assert evs_retained_count(7, 3, 0.25) == int(21 * 0.75)
    with pytest.raises(ParameterError, match="rate"):
        evs_retained_count(24, 3, 1.0)


@pytest.mark.parametrize("name", SELECTORS)
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75, 0.9])
def test_count_exact_and_positions_follow_the_cells(name, rate):
    emb, thw, m = video()
    t, h, w = thw
    per = (h // m) * (w // m)
    retained = evs_retained_count(per, t, rate)
    pos = oracle_positions(t, h, w, m)
    out = prune_video_embeds(emb, thw, m, retained, name, positions=pos)
    assert out.embeds.shape == (retained, emb.shape[1])
    assert out.embeds.dtype == emb.dtype
    assert int(out.keep.sum()) == retained and out.keep.shape == (emb.shape[0],)
    assert out.counts.tolist() == group_allotment(retained, t, per, "even").tolist()
    # every output token carries the original (t, h, w) of the cell it stands at
    assert torch.equal(out.positions, pos[out.keep])
    cells = torch.nonzero(out.keep).squeeze(1)
    expect = torch.tensor([[g * 2, r, c, w // m] for g, r, c in
                           ((int(i) // per, (int(i) % per) // (w // m), int(i) % (w // m)) for i in cells)])
    assert torch.equal(out.positions, expect)
    if not out.merged:  # pure pruning: the kept tokens themselves, in vLLM's order
        assert torch.equal(out.embeds, emb[out.keep])


@pytest.mark.parametrize("name", SELECTORS)
def test_rate_zero_is_identity(name):
    emb, thw, m = video(dtype=torch.bfloat16)
    pos = oracle_positions(*thw, m)
    out = prune_video_embeds(emb, thw, m, emb.shape[0], name, positions=pos)
    assert out.embeds is emb and out.positions is pos
    assert bool(out.keep.all()) and not out.merged


def test_pruning_keeps_input_dtype_and_values():
    emb, thw, m = video(dtype=torch.bfloat16)
    out = prune_video_embeds(emb, thw, m, 30, "ktv-tokens")
    assert out.embeds.dtype == torch.bfloat16
    assert torch.equal(out.embeds, emb[out.keep])


def test_selector_choice_matters():
    """ktv-tokens keeps its own choice, not the first raster tokens."""
    emb, thw, m = video(seed=3)
    a = prune_video_embeds(emb, thw, m, 30, "ktv-tokens", selector_params={"importance": "norm", "alpha": 1.0})
    per = 24
    flat = emb.reshape(3, per, -1)
    for f in range(3):
        kept = torch.nonzero(a.keep.reshape(3, per)[f]).squeeze(1)
        top = torch.topk(flat[f].norm(dim=-1), kept.numel()).indices.sort().values
        assert torch.equal(kept, top)  # alpha=1: pure importance = token norm


def test_first_full_allotment_keeps_first_group():
    emb, thw, m = video()
    out = prune_video_embeds(emb, thw, m, 36, "ktv-tokens", allotment="first-full")
    assert out.counts.tolist() == [24, 6, 6]
    assert bool(out.keep[:24].all())


def test_top_up_when_selector_returns_fewer():
    """resize rounds grids down (e.g. 7 -> 2x3 = 6); the group is topped up to its share."""
    emb, thw, m = video(t=2)
    out = prune_video_embeds(emb, thw, m, 14, "resize")
    assert out.counts.tolist() == [7, 7] and out.merged
    assert out.embeds.shape[0] == 14


def test_deepstack_channels_travel_with_tokens():
    """Qwen3-VL passes [N, D * (1 + levels)]: pruning keeps whole rows."""
    emb, thw, m = video(c=8 * 3)
    out = prune_video_embeds(emb, thw, m, 40, "ktv-tokens")
    assert torch.equal(out.embeds, emb[out.keep])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(retained=0), "retained"),
        (dict(retained=73), "retained"),
        (dict(grid_thw=(3, 7, 12)), "multiples"),
        (dict(grid_thw=(2, 8, 12)), "tokens"),
        (dict(selector="nope"), "nope"),
        (dict(allotment="first"), "allotment"),
        (dict(allotment=np.array([30, 0, 0])), "allotment"),
    ],
)
def test_bad_input_one_line_errors(kwargs, match):
    emb, thw, m = video()
    args = dict(grid_thw=thw, retained=36, selector="ktv-tokens")
    args.update(kwargs)
    with pytest.raises(Exception, match=match) as e:
        prune_video_embeds(emb, args["grid_thw"], m, args["retained"], args["selector"],
                           allotment=kwargs.get("allotment", "even"))
    assert "\n" not in str(e.value)


def test_explicit_allotment():
    emb, thw, m = video()
    out = prune_video_embeds(emb, thw, m, 30, "ktv-tokens", allotment=np.array([20, 0, 10]))
    assert out.counts.tolist() == [20, 0, 10]
