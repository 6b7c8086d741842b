"""Each seed method in the model path: what the LLM is fed equals the method's definition for
that family, computed independently from the tower's own hidden states and projections."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

from vidsieve.adapters import wrap  # noqa: E402

import vidsieve  # noqa: E402

from . import adapters_fixtures as fx  # noqa: E402

NEXT_TEXT = "USER: <video>\ndescribe the video ASSISTANT:"


def _minmax(v: torch.Tensor) -> torch.Tensor:
    lo, hi = v.amin(1, keepdim=True), v.amax(1, keepdim=True)
    return (v - lo) / (hi - lo).clamp_min(1e-12)


def _naive_redundancy(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity to the other tokens, with the full L x L matrix."""
    xn = x / x.norm(dim=-1, keepdim=True)
    s = xn @ xn.transpose(1, 2)
    n = x.shape[1]
    return (s.sum(-1) - torch.diagonal(s, dim1=1, dim2=2)) / (n - 1)


def _topk_raster(scores: torch.Tensor, k: int) -> list[list[int]]:
    return [sorted(np.argsort(-row.numpy(), kind="stable")[:k].tolist()) for row in scores]


def _next_video_tower(model: Any, proc: Any, video: vidsieve.Frames) -> tuple[Any, torch.Tensor]:
    inp = proc(text=[NEXT_TEXT], videos=[video.pixels], return_tensors="pt")
    pix = inp["pixel_values_videos"][0].float()
    with torch.no_grad():
        out = model.model.vision_tower(pix, output_hidden_states=True)
    return out, pix


@pytest.mark.parametrize("alpha", [0.2, 0.85])
def test_ktv_released_on_llava_next_video(alpha: float) -> None:
    """ktv-tokens (released) on LLaVA-NeXT-Video: raw full-width [CLS] logits of the last layer
    (q.k^T / sqrt(hidden), no softmax, no head split), average-pooled like the model's grid;
    redundancy on the pooled feature-layer features entering the projector; top-k per frame."""
    model, proc = fx.build("llava_next_video")
    video = fx.make_frames(4, 60, 80, seed=21)
    per_frame = 4
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", token_params={"alpha": alpha}, cache=False,
               encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4, tokens=4 * per_frame))
    kw = vlm.prepare(video, "describe the video")
    sel = vlm._last_selections[0]
    assert sel.extras["importance_source"] == "cls_attention"
    assert sel.extras["redundancy_source"] == "pre_projector"

    out, pix = _next_video_tower(model, proc, video)
    cfg = model.config
    last = model.model.vision_tower.encoder.layers[-1]
    with torch.no_grad():
        x = last.layer_norm1(out.hidden_states[-2])  # the last layer's attention input
        q, k = last.self_attn.q_proj(x), last.self_attn.k_proj(x)
    c = q.shape[-1]
    assert c == cfg.vision_config.hidden_size
    logits = torch.einsum("fc,flc->fl", q[:, 0], k)[:, 1:] / c**0.5  # [F, patches]
    side = int(round(logits.shape[1] ** 0.5))
    stride = cfg.spatial_pool_stride
    imp = F.avg_pool2d(logits.reshape(-1, 1, side, side), stride).flatten(1)
    feats = out.hidden_states[cfg.vision_feature_layer][:, 1:]
    pre = F.avg_pool2d(feats.reshape(-1, side, side, feats.shape[-1]).permute(0, 3, 1, 2), stride)
    pre = pre.flatten(2).transpose(1, 2)  # [F, h*w, D'] pooled, before the projector
    scores = alpha * _minmax(imp) + (1 - alpha) * (1 - _minmax(_naive_redundancy(pre.double()).float()))
    torch.testing.assert_close(sel.extras["scores"], scores, rtol=1e-4, atol=1e-5)
    expect = _topk_raster(scores, per_frame)
    assert [i.tolist() for i in sel.index] == expect
    # the LLM gets the model's own projected tokens at exactly those cells
    with torch.no_grad():
        full = model.model.get_video_features(pixel_values_videos=pix[None]).pooler_output[0]
    full = full.reshape(4, -1, full.shape[-1])
    fed = kw["mm_encoder_outputs"]["video"].pooler_output[0]
    torch.testing.assert_close(fed, torch.cat([full[f, idx] for f, idx in enumerate(expect)]), rtol=0, atol=0)


def test_ktv_head_softmax_variant_is_the_per_head_softmax() -> None:
    """mode="head-softmax": per-head softmax [CLS] rows of the last layer, mean over heads (the
    eager attention weights), redundancy on the projected tokens."""
    model, proc = fx.build("llava_next_video")
    video = fx.make_frames(4, 60, 80, seed=22)
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", token_params={"mode": "head-softmax"}, cache=False,
               encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4, tokens=12))
    vlm.prepare(video, "describe the video")
    sel = vlm._last_selections[0]
    assert sel.extras["redundancy_source"] == "tokens"
    tower = model.model.vision_tower
    _, pix = _next_video_tower(model, proc, video)
    tower.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = tower(pix, output_attentions=True).attentions[-1]
    finally:
        tower.set_attn_implementation("sdpa")
    rows = att[:, :, 0, 1:].float().mean(1)
    side = int(round(rows.shape[1] ** 0.5))
    imp = F.avg_pool2d(rows.reshape(-1, 1, side, side), model.config.spatial_pool_stride).flatten(1)
    with torch.no_grad():
        full = model.model.get_video_features(pixel_values_videos=pix[None]).pooler_output[0]
    toks = full.reshape(4, -1, full.shape[-1]).float()
    scores = 0.2 * _minmax(imp) + 0.8 * (1 - _minmax(_naive_redundancy(toks.double()).float()))
    torch.testing.assert_close(sel.extras["scores"], scores, rtol=1e-4, atol=1e-5)
    assert [i.tolist() for i in sel.index] == _topk_raster(scores, 3)
