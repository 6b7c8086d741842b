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


def _ktv_oracle_scores(model: Any, proc: Any, video: vidsieve.Frames, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Released KTV scores on LLaVA-NeXT-Video's grid from the tower's own hidden states and
    q/k projections: ``[F, h*w]``, and the pixel values."""
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
    return scores, pix


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
    sel = kw.selections[0]
    assert sel.extras["importance_source"] == "cls_attention"
    assert sel.extras["redundancy_source"] == "pre_projector"

    scores, pix = _ktv_oracle_scores(model, proc, video, alpha)
    torch.testing.assert_close(sel.extras["scores"], scores, rtol=1e-4, atol=1e-5)
    expect = _topk_raster(scores, per_frame)
    assert [i.tolist() for i in sel.index] == expect
    # the LLM gets the model's own projected tokens at exactly those cells
    with torch.no_grad():
        full = model.model.get_video_features(pixel_values_videos=pix[None]).pooler_output[0]
    full = full.reshape(4, -1, full.shape[-1])
    fed = kw["mm_encoder_outputs"]["video"].pooler_output[0]
    torch.testing.assert_close(fed, torch.cat([full[f, idx] for f, idx in enumerate(expect)]), rtol=0, atol=0)


def test_ktv_keyframes_ladder_and_key_tokens_on_llava_next_video() -> None:
    """frames="ktv" + tokens="ktv-tokens": the released ladder by relevance rank (6 frames,
    504 scaled to the model's 9 tokens per frame: [2, 1, 1, 1, 1, 1]) gives each keyframe its
    count, and each keeps its top-scored tokens (scores from the tower's own q/k)."""
    from vidsieve.tokens.ktv_tokens import frame_budgets

    base = fx.small_encoder()

    class TextEncoder(type(base)):  # type: ignore[misc]
        def embed_text(self, text: str) -> np.ndarray:  # a fixed "text" vector in the frame space
            return self.encode(np.full((1, 32, 32, 3), 90, np.uint8))[0][0]

    model, proc = fx.build("llava_next_video")
    video = fx.make_frames(12, 60, 80, seed=23)
    vlm = wrap(model, proc, frames="ktv", selector_params={"tokens_per_frame": 9}, tokens="ktv-tokens", cache=False,
               encoder=TextEncoder(**base.get_params()), budget=vidsieve.Budget(frames=6, tokens=8))
    pv = vlm.select_frames(video, "is there a red ball ?")
    rank = pv.selection.extras["rank"]
    assert pv.selection.extras["token_rule"] == "ladder-6-504"
    ladder = frame_budgets(rank, 8, 9)
    assert sorted(ladder.tolist()) == [1, 1, 1, 1, 1, 2]
    kw = vlm.prepare(pv, "is there a red ball ?")
    sel = kw.selections[0]
    assert sel.counts.tolist() == ladder.tolist()
    chosen = vidsieve.Frames(pixels=pv.frames.pixels, indices=pv.frames.indices, timestamps=pv.frames.timestamps)
    scores, _ = _ktv_oracle_scores(model, proc, chosen, 0.2)
    want = [sorted(np.argsort(-scores[f].numpy(), kind="stable")[: int(n)].tolist()) for f, n in enumerate(ladder)]
    assert [i.tolist() for i in sel.index] == want


def test_ktv_head_softmax_variant_is_the_per_head_softmax() -> None:
    """mode="head-softmax": per-head softmax [CLS] rows of the last layer, mean over heads (the
    eager attention weights), redundancy on the projected tokens."""
    model, proc = fx.build("llava_next_video")
    video = fx.make_frames(4, 60, 80, seed=22)
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", token_params={"mode": "head-softmax"}, cache=False,
               encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4, tokens=12))
    sel = vlm.prepare(video, "describe the video").selections[0]
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


# ---------------------------------------------------------------------------------- AOT on OV
OV_TEXT = "<|im_start|>user\n<video>\ndescribe the video<|im_end|>\n<|im_start|>assistant\n"


def _released_sinkhorn(cost: torch.Tensor, eps: float = 0.1, max_iter: int = 100, thresh: float = 1e-2) -> torch.Tensor:
    """Batched Sinkhorn with uniform marginals and the released stop test (mean |delta r| over
    the whole batch below ``thresh``). cost: [B, N, M] -> plan [B, N, M]."""
    k = torch.exp(-cost.double() / eps)
    b, n, m = cost.shape
    u = torch.full((b, n), 1.0 / n, dtype=torch.float64)
    v = torch.full((b, m), 1.0 / m, dtype=torch.float64)
    r, c = torch.ones_like(u), torch.ones_like(v)
    for _ in range(max_iter):
        r0 = r
        r = u / (k @ c[..., None])[..., 0]
        c = v / (k.transpose(1, 2) @ r[..., None])[..., 0]
        if (r - r0).abs().mean() < thresh:
            break
    return r[..., None] * k * c[:, None, :]


def _oracle_anchors(shallow: torch.Tensor, deep: torch.Tensor, m: int, side: int) -> torch.Tensor:
    """Local: top (floor(m/2) // 9) of ``shallow`` in each of 3 x 3 windows; global: top
    (m - floor(m/2)) of ``deep`` outside them. Returns bool [F, L]."""
    f, n = shallow.shape
    win = [(r * 3 // side) * 3 + (c * 3 // side) for r in range(side) for c in range(side)]
    per = (m // 2) // 9
    out = torch.zeros(f, n, dtype=torch.bool)
    for i in range(f):
        for wdx in range(9):
            cells = [j for j in range(n) if win[j] == wdx]
            best = sorted(cells, key=lambda j: -float(shallow[i, j]))[:per]
            out[i, best] = True
        rest = [j for j in sorted(range(n), key=lambda j: -float(deep[i, j])) if not out[i, j]]
        out[i, rest[: m - m // 2]] = True
    return out


def _oracle_intra(x: torch.Tensor, anchors: torch.Tensor, side: int) -> torch.Tensor:
    """Released intra merge: 0.9 * OT update (joint plan, lam 1) + 0.1 * nearest-anchor mean;
    returns the merged map [F, L, D] (non-anchor cells keep their token)."""
    lin = torch.linspace(0, 1, side, dtype=torch.float64)
    pos = torch.stack(torch.meshgrid(lin, lin, indexing="ij")[::-1], -1).reshape(-1, 2)
    src = [torch.nonzero(~a).squeeze(1) for a in anchors]
    anc = [torch.nonzero(a).squeeze(1) for a in anchors]
    xd = x.double()
    cost = torch.stack([
        (1 - F.cosine_similarity(xd[i, s][:, None], xd[i, a][None], dim=-1)) + 0.5 * torch.cdist(pos[s], pos[a])
        for i, (s, a) in enumerate(zip(src, anc))
    ])
    plan = _released_sinkhorn(cost)
    out = xd.clone()
    for i, (s, a) in enumerate(zip(src, anc)):
        xs, xa, t = xd[i, s], xd[i, a], plan[i]
        ot_upd = (xa + t.T @ xs) / (1 + t.sum(0))[:, None]
        near = F.cosine_similarity(xs[:, None], xa[None], dim=-1).argmax(1)
        nn_sum = torch.zeros_like(xa).index_add_(0, near, xs)
        cnt = torch.bincount(near, minlength=len(a)).double()
        nn_upd = (xa + nn_sum) / (1 + cnt)[:, None]
        out[i, a] = 0.9 * ot_upd + 0.1 * nn_upd
    return out


def _oracle_clip(pooled: torch.Tensor, mask: torch.Tensor, keep_ratio: float, sigma: float = 1.5) -> torch.Tensor:
    """Released clip merge of one clip (frame 0 = anchor frame) and its output sequence."""
    anchors0 = pooled[0][mask[0]]
    cur = anchors0.clone()
    seq = [anchors0]
    for i in range(1, pooled.shape[0]):
        s = pooled[i][mask[i]]
        cs = 1 - F.cosine_similarity(s[:, None], cur[None], dim=-1).clamp(-1 + 1e-6, 1 - 1e-6)
        cs = cs - cs.min()
        ct = 1 - np.exp(-(i * i) / (2 * sigma**2))
        t = _released_sinkhorn((cs * ct)[None])[0]
        p = t / t.sum(1, keepdim=True).clamp_min(1e-9)
        pmax = p.max(1).values
        kept = pmax < torch.quantile(pmax, keep_ratio)
        seq.append(s[kept])
        w = p * (~kept)[:, None]
        cur = (cur + w.T @ s) / (1 + w.sum(0))[:, None]
    seq.append(cur)
    return torch.cat(seq)


def test_aot_released_chain_on_llava_onevision() -> None:
    """aot (released, grid="native") on LLaVA-OneVision feeds the LLM exactly the released
    chain computed here from the tower's own outputs: intra anchors + OT merge on the tower
    grid with its attention, bilinear pooling of the merged map and of the anchor mask
    (>= 0.5), clip OT merge, layout [anchors, residuals..., merged anchors], then the newline."""
    model, proc = fx.build("llava_onevision")
    video = fx.make_frames(4, 60, 80, seed=31)
    params = {"shallow_layer": 0, "deep_layer": -2, "anchors": 20, "clip_len": 4, "keep_ratio": 0.3}
    vlm = wrap(model, proc, frames="uniform", tokens="aot", token_params=params, cache=False,
               encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4, tokens=60))
    kw = vlm.prepare(video, "describe the video")
    sel = kw.selections[0]
    assert sel.extras["route"] == "before-pooling" and not sel.extras["truncated"]

    inp = proc(text=[OV_TEXT], videos=[video.pixels], return_tensors="pt")
    pix = inp["pixel_values_videos"][0].float()
    tower = model.model.vision_tower
    tower.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = tower(pix, output_hidden_states=True, output_attentions=True)
    finally:
        tower.set_attn_implementation("sdpa")
    n_layers = len(out.attentions)
    received = [a.float().sum(2).mean(1) for a in out.attentions]  # [F, L] per layer
    with torch.no_grad():
        x = model.model.multi_modal_projector(out.hidden_states[model.config.vision_feature_layer]).float()
    f, big_l, _ = x.shape
    side = int(round(big_l**0.5))
    anchors = _oracle_anchors(received[0], received[n_layers - 2], 20, side)
    assert int(anchors[0].sum()) == 9 + 10  # local share rounded down to a multiple of 9
    xmap = _oracle_intra(x, anchors, side)
    hp = -(-side // 2)

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t.reshape(f, side, side, -1).permute(0, 3, 1, 2), size=(hp, hp),
                             mode="bilinear").permute(0, 2, 3, 1).reshape(f, hp * hp, -1)

    pooled = pool(xmap)
    mask = pool(anchors.double()[..., None])[..., 0] >= 0.5
    assert bool(mask.any(1).all())
    np.testing.assert_array_equal(sel.extras["pooled_anchors"], mask.sum(1).numpy())
    expect = _oracle_clip(pooled, mask, 0.3)
    fed = kw["mm_encoder_outputs"]["video"].pooler_output[:, 0, :]
    assert fed.shape[0] == expect.shape[0] + 1 == vlm.last_stats.tokens[0]
    torch.testing.assert_close(fed[:-1].double(), expect, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fed[-1], model.model.image_newline.to(fed.dtype))
    assert (kw["input_ids"] == vlm.video_token_id).sum() == fed.shape[0]


def test_aot_released_on_onevision_keeps_the_budget_ceiling() -> None:
    """32 frames (clips of 4): never more tokens than the budget; full allotment is exact."""
    model, proc = fx.build("llava_onevision")
    video = fx.make_frames(32, 40, 40, seed=32)
    for tokens in (9, 40, 120, 400):
        vlm = wrap(model, proc, frames="uniform", tokens="aot", token_params={"shallow_layer": 0}, cache=False,
                   encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=32, tokens=tokens))
        kw = vlm.prepare(video, "describe the video")
        n = int((kw["input_ids"] == vlm.video_token_id).sum())
        assert n == vlm.last_stats.tokens[0] <= tokens
        sel = kw.selections[0]
        assert sel.extras["route"] == "before-pooling"
        if tokens > 32:  # every frame allotted: 8 clips of 4
            assert sel.extras["clips"].shape == (8, 4)
        with torch.no_grad():
            model(**kw)
    full = wrap(model, proc, frames="uniform", tokens="aot", cache=False, encoder=fx.small_encoder(),
                budget=vidsieve.Budget(frames=32, tokens=32 * 16 + 1)).prepare(video, "x")
    ref = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=32)).prepare(video, "x")
    assert torch.equal(full["mm_encoder_outputs"]["video"].pooler_output, ref["mm_encoder_outputs"]["video"].pooler_output)


def test_aot_llm_grid_mode_and_intra_scale_warning() -> None:
    from vidsieve.tokens.aot import AOTSelector

    with pytest.warns(UserWarning, match="intra_scale"):
        AOTSelector(intra_scale=2.0)
    model, proc = fx.build("llava_onevision")
    vlm = wrap(model, proc, frames="uniform", tokens="aot", token_params={"grid": "llm"}, cache=False,
               encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4, tokens=30))
    assert "route" not in vlm.prepare(fx.make_frames(4, seed=33), "x").selections[0].extras


# ------------------------------------------------------------------------ frame selectors
@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
@pytest.mark.parametrize("frames", ["ktv", "quota", "f2c", "kframes", "peek"])
def test_frame_selector_in_the_model_path(family: str, frames: str) -> None:
    """The frames fed to the processor are the selector's own choice on the same candidate
    features, and its per-frame allotments (KTV ladder, QuoTA quotas) and downscales (F2C)
    reach the token grid: summed over each temporal group (Qwen), capped at native size."""
    from vidsieve.types import FrameFeatures, Query

    model, proc = fx.build(family)
    video = fx.make_frames(12, 60, 80, seed=40, fps=2.0)
    prompt = "is there a red ball ?"
    budget = vidsieve.Budget(frames=6, tokens=40)
    enc = fx.small_encoder()
    emb, grid = enc.encode(video.pixels)
    feats = FrameFeatures(embeddings=np.asarray(emb, np.float32), indices=video.indices, timestamps=video.timestamps,
                          grid=grid, encoder=enc.cache_key(), fps=2.0, duration=float(video.indices[-1] + 1) / 2.0)
    expect = vidsieve.create_selector(frames).select(feats, budget=budget, query=enc.embed_query(Query(text=prompt)))
    vlm = wrap(model, proc, frames=frames, tokens="resize", cache=False, encoder=fx.small_encoder(), budget=budget)
    kw = vlm.prepare(video, prompt)
    assert vlm.last_stats.frame_indices == [expect.indices.tolist()]
    sel = kw.selections[0]
    h, w = sel.grid
    k = len(expect.indices)
    g = vlm.temporal_group
    order = np.r_[np.arange(k), np.full(-k % g, k - 1)]
    ft = expect.frame_tokens
    if ft is not None:
        allot = np.r_[ft, np.zeros(-k % g, np.int64)].reshape(-1, g).sum(1)
        if expect.downscale is not None:
            s = np.maximum(expect.downscale[order].reshape(-1, g).max(1), 1.0)
            allot = np.minimum(allot, np.ceil(h / s).astype(int) * np.ceil(w / s).astype(int))
        assert (sel.counts <= np.minimum(allot, h * w)).all()
    assert sel.total + (1 if family == "llava_onevision" else 0) == vlm.last_stats.tokens[0] <= budget.tokens
