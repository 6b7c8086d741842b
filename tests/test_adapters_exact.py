"""Exactness of the HF adapters on tiny random models of the five real families.

Keep-all identity (bit-identical logits, same generated tokens, batch 2 with left padding and
videos of different sizes), positions as the rotary embedding receives them, placeholder
count == kept tokens, budget never exceeded, frame indices/fps reaching the processor,
Qwen3-VL deepstack cut, and clear errors for unsupported models or mismatched processors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

from vidsieve.adapters import AdapterError, wrap  # noqa: E402

import vidsieve  # noqa: E402

from . import adapters_fixtures as fx  # noqa: E402

FAMILIES = list(fx.FAMILIES)
PROMPTS = ["describe the video", "what happens after the man opens the door ?"]


def two_videos(family: str) -> list[vidsieve.Frames]:
    # LLaVA processors stack a batch's videos: same frame count there, different sizes always.
    return [fx.make_frames(6, 60, 80, seed=1), fx.make_frames(4 if "qwen" in family else 6, 90, 60, seed=2)]


def plain_inputs(vlm: Any, videos: list[vidsieve.Frames]) -> dict[str, Any]:
    """What a user of the plain model would feed it: the processor on the same frames."""
    prepared = []
    for v in videos:
        fr, fps, total, _ = vlm._as_frames(v, None)
        prepared.append(vlm._group(fr, fps, total, None))
    return vlm.process([vlm.text_for(p) for p in PROMPTS], prepared)


def keep_all(family: str, **kw: Any) -> Any:
    model, proc = fx.build(family)
    return wrap(model, proc, frames="uniform", tokens="none", budget=vidsieve.Budget(frames=64), cache=False, encoder=fx.small_encoder(), **kw)


@pytest.mark.parametrize("family", FAMILIES)
def test_keep_all_is_bit_identical(family: str) -> None:
    model, _ = fx.build(family)
    vlm = keep_all(family)
    videos = two_videos(family)
    inp = plain_inputs(vlm, videos)
    assert (inp["attention_mask"] == 0).any(), "the batch must exercise left padding"
    kw = vlm.prepare(videos, PROMPTS)
    assert torch.equal(kw["input_ids"], inp["input_ids"])
    assert "pixel_values_videos" not in kw
    ref_kw = dict(inp)
    if "qwen" not in family:
        # LLaVA's forward numbers a left-padded row 0..L-1 unless told otherwise; generate (and the
        # adapter) use attention_mask.cumsum - 1, so the plain reference gets those positions too.
        att = inp["attention_mask"]
        ref_kw["position_ids"] = (att.cumsum(-1) - 1).masked_fill(att == 0, 0)
    with torch.no_grad():
        ref = model(**ref_kw).logits
        got = model(**kw).logits
    assert torch.equal(ref, got), f"max |diff| {(ref - got).abs().max().item()}"
    n = inp["input_ids"].shape[1]
    g_ref = model.generate(**inp, max_new_tokens=5)[:, n:]
    g = vlm.generate(videos, PROMPTS, max_new_tokens=5, return_ids=True)
    assert torch.equal(g_ref, g)
    st = vlm.last_stats
    assert st.tokens == st.original_tokens
    assert {"decode", "encode", "select", "prefill", "generate"} <= set(st.timings)
    assert st.peak_memory_bytes and st.peak_memory_bytes > 0


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
def test_keep_all_generation_kwargs(family: str) -> None:
    """Beam search, sampling and num_return_sequences give the plain model's tokens too."""
    model, _ = fx.build(family)
    vlm = keep_all(family)
    videos = two_videos(family)
    inp = plain_inputs(vlm, videos)
    n = inp["input_ids"].shape[1]
    gk = dict(max_new_tokens=3, num_beams=2, num_return_sequences=2)
    g_ref = model.generate(**inp, **gk)[:, n:]
    g = vlm.generate(videos, PROMPTS, return_ids=True, **gk)
    assert torch.equal(g_ref, g)
    texts = vlm.generate(videos, PROMPTS, **gk)
    assert isinstance(texts, list) and len(texts) == 4
    sk = dict(max_new_tokens=4, do_sample=True, top_k=5, num_return_sequences=2)
    torch.manual_seed(3)
    s_ref = model.generate(**inp, **sk)[:, n:]
    torch.manual_seed(3)
    s_got = vlm.generate(videos, PROMPTS, return_ids=True, **sk)
    assert torch.equal(s_ref, s_got)


def record_rotary(model: Any) -> tuple[list[torch.Tensor], Any]:
    calls: list[torch.Tensor] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        pos = kwargs.get("position_ids", args[1] if len(args) > 1 else None)
        calls.append(pos.detach().clone())

    return calls, model.model.language_model.rotary_emb.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_positions_are_the_original_ones(family: str) -> None:
    """Kept tokens get their unpruned positions; generated tokens those they'd have had unpruned."""
    model, proc = fx.build(family)
    full = keep_all(family)
    videos = two_videos(family)
    inp = plain_inputs(full, videos)
    calls, h = record_rotary(model)
    try:
        model.generate(**inp, max_new_tokens=3)
        ref = list(calls)
        calls.clear()
        vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", cache=False, encoder=fx.small_encoder(),
                   budget=vidsieve.Budget(frames=64, tokens=9))
        vlm.generate(videos, PROMPTS, max_new_tokens=3)
        got = list(calls)
    finally:
        h.remove()
    assert len(ref) == len(got) == 3
    ids, att = inp["input_ids"], inp["attention_mask"].bool()
    vt = vlm.video_token_id
    kept_rows = []
    sels = vlm.prepare(videos, PROMPTS).selections  # the selections of the generate call above
    for b, sel in enumerate(sels):
        keep = torch.ones(ids.shape[1], dtype=torch.bool)
        where = torch.nonzero(ids[b] == vt).squeeze(1)
        video_keep = sel.keep_mask().reshape(-1)
        tail = where.numel() - video_keep.numel()
        keep[where] = torch.cat([video_keep, torch.ones(tail, dtype=torch.bool)])
        kept_rows.append(torch.nonzero(keep & att[b]).squeeze(1))
        assert video_keep.sum() < video_keep.numel(), "the budget must prune"
    new_att = vlm.prepare(videos, PROMPTS)["attention_mask"].bool()
    for b, rows in enumerate(kept_rows):
        expect = ref[0][..., b, rows]
        have = got[0][..., b, new_att[b]]
        assert torch.equal(expect, have), f"row {b}: prefill positions differ"
        for step in (1, 2):
            assert torch.equal(ref[step][..., b, :], got[step][..., b, :]), f"row {b}: step {step}"


@pytest.mark.parametrize("family", ["llava_onevision", "llava_next_video"])
def test_compact_positions(family: str) -> None:
    model, proc = fx.build(family)
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", positions="compact", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=8, tokens=10))
    kw = vlm.prepare(two_videos(family), PROMPTS)
    att = kw["attention_mask"]
    assert torch.equal(kw["position_ids"], (att.cumsum(-1) - 1).masked_fill(att == 0, 0))
    with pytest.raises(vidsieve.ParameterError):
        keep_all("qwen2_vl", positions="compact")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("tokens", ["none", "ktv-tokens", "resize", "aot"])
def test_placeholders_equal_kept_tokens_within_budget(family: str, tokens: str) -> None:
    model, proc = fx.build(family)
    videos = two_videos(family)
    for budget in (7, 23):
        vlm = wrap(model, proc, frames="uniform", tokens=tokens, cache=False, encoder=fx.small_encoder(),
                   budget=vidsieve.Budget(frames=4, tokens=budget))
        kw = vlm.prepare(videos, PROMPTS)
        n = (kw["input_ids"] == vlm.video_token_id).sum(1).tolist()
        st = vlm.last_stats
        assert n == st.tokens
        assert all(0 < t <= budget for t in st.tokens), (st.tokens, budget)
        assert all(f <= 4 for f in st.frames)
        enc = kw["mm_encoder_outputs"]["video"].pooler_output
        total = sum(int(e.shape[0]) for e in enc) if isinstance(enc, (list, tuple)) else int(enc.shape[0])
        assert total == sum(n)
        with torch.no_grad():
            model(**kw)


def test_budget_below_fixed_tokens_is_a_clear_error() -> None:
    model, proc = fx.build("llava_onevision")
    vlm = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=2, tokens=1))
    with pytest.raises(vidsieve.ParameterError, match="newline|fixed"):
        vlm.prepare(two_videos("llava_onevision")[:1], PROMPTS[:1])


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision"])
def test_chosen_frame_indices_and_fps_reach_the_processor(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, proc = fx.build(family)
    seen = fx.record_processor_calls(proc, monkeypatch)
    video = fx.make_frames(10, 60, 80, seed=3, fps=5.0, step=7)  # source indices 0, 7, ..., 63
    vlm = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=4))
    kw = vlm.prepare(video, "describe the video")
    chosen = vlm.last_stats.frame_indices[0]
    assert chosen == [0, 21, 42, 63]  # linspace over 10 candidates: rows 0, 3, 6, 9
    md = seen[-1]["video_metadata"][0]
    assert seen[-1]["do_sample_frames"] is False
    assert md["frames_indices"] == chosen and md["fps"] == pytest.approx(5.0) and md["total_num_frames"] == 64
    if family == "qwen2_5_vl":
        inputs = vlm.process([vlm.text_for("x")], [vlm._group(vlm.select_frames(video, "x").frames, 5.0, 64, None)])
        # 2 / sampled_fps, sampled_fps = 4 chosen of 64 frames at 5 fps
        assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(2 / (4 / 64 * 5.0))
    if family == "qwen3_vl":
        is_video = (kw["input_ids"][0] == vlm.video_token_id).int()
        runs = int((is_video[1:] > is_video[:-1]).sum()) + int(is_video[0])
        assert runs == 2  # one timestamped run per temporal group of 2 frames


QWEN_TEXT = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>describe the video<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("n", [5, 7, 9])
def test_odd_frame_counts_match_the_plain_processor_and_model(family: str, n: int) -> None:
    """Keep-all on an odd number of chosen frames == the plain HF processor + unwrapped model on
    exactly those frames (the processor pads them itself; its metadata-derived values, Qwen2.5's
    second_per_grid_ts and Qwen3's total-pixel cap and timestamps, must see the true count)."""
    model, proc = fx.build(family)
    video = fx.make_frames(n, 112, 168, seed=10 + n, fps=4.0, step=3)
    assert proc.chat_template is None or not proc.chat_template  # the literal prompt below is the model input
    tok = proc.tokenizer
    side, tok.padding_side = tok.padding_side, "left"
    try:
        ref_in = dict(proc(text=[QWEN_TEXT], videos=[video.pixels], return_tensors="pt", padding=True,
                           do_sample_frames=False,
                           video_metadata=[{"total_num_frames": int(video.indices[-1]) + 1, "fps": 4.0,
                                            "frames_indices": video.indices.tolist()}]))
    finally:
        tok.padding_side = side
    ref_in.pop("token_type_ids", None)
    vlm = keep_all(family)
    kw = vlm.prepare(video, "describe the video")
    assert vlm.last_stats.frame_indices == [video.indices.tolist()]
    assert torch.equal(kw["input_ids"], ref_in["input_ids"]), (
        int((kw["input_ids"] == vlm.video_token_id).sum()), int((ref_in["input_ids"] == vlm.video_token_id).sum()))
    with torch.no_grad():
        ref = model(**ref_in).logits
        got = model(**kw).logits
    assert torch.equal(ref, got), f"max |diff| {(ref - got).abs().max().item()}"
    g_ref = model.generate(**ref_in, max_new_tokens=3)[:, ref_in["input_ids"].shape[1]:]
    assert torch.equal(vlm.generate(video, "describe the video", max_new_tokens=3, return_ids=True), g_ref)


def test_odd_frame_count_allotment_follows_the_processor_padding() -> None:
    """3 chosen frames on Qwen: 2 temporal groups; the second group's allotment is its one real
    frame's, its time that frame's (the padding repeat adds nothing)."""
    from vidsieve.types import Selection

    model, proc = fx.build("qwen2_vl")
    vlm = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=3))
    fr = fx.make_frames(3, seed=4)
    sel = Selection(indices=fr.indices, rows=np.arange(3), timestamps=fr.timestamps, selector="x", params={},
                    frame_tokens=np.array([5, 6, 7]), downscale=np.array([1.0, 2.0, 3.0]))
    pv = vlm._group(fr, 4.0, 7, sel)
    assert len(pv.frames) == 3
    assert pv.group_allotment.tolist() == [11, 7]
    assert pv.group_downscale.tolist() == [2.0, 3.0]
    assert pv.group_timestamps.tolist() == [(fr.timestamps[0] + fr.timestamps[1]) / 2, fr.timestamps[2]]
    vlm.prepare(fx.make_frames(9, seed=4), "describe the video")
    assert vlm.last_stats.frames == [3] and len(vlm.last_stats.frame_indices[0]) == 3


def test_qwen3_deepstack_is_cut_with_the_same_mask() -> None:
    model, proc = fx.build("qwen3_vl")
    videos = two_videos("qwen3_vl")
    full = keep_all("qwen3_vl").prepare(videos, PROMPTS)["mm_encoder_outputs"]["video"]
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=64, tokens=10))
    kw = vlm.prepare(videos, PROMPTS)
    pruned = kw["mm_encoder_outputs"]["video"]
    assert len(pruned.deepstack_features) == len(model.config.vision_config.deepstack_visual_indexes)
    for i, sel in enumerate(kw.selections):
        keep = sel.keep_mask().reshape(-1)
        assert torch.equal(pruned.pooler_output[i], full.pooler_output[i][keep])
        for layer_full, layer_pruned in zip(full.deepstack_features, pruned.deepstack_features):
            assert torch.equal(layer_pruned[i], layer_full[i][keep])


def test_tower_hooks_capture_attention_and_restore_the_model() -> None:
    model, proc = fx.build("llava_next_video")
    before = {n: len(m._forward_pre_hooks) for n, m in model.named_modules()}
    vlm = wrap(model, proc, frames="uniform", tokens="ktv-tokens", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=4, tokens=12))
    kw = vlm.prepare(two_videos("llava_next_video"), PROMPTS)
    assert kw.selections[0].extras.get("importance_source") == "cls_attention"
    assert {n: len(m._forward_pre_hooks) for n, m in model.named_modules()} == before
    # the statistics equal the reference computed from the tower's own attention weights
    stats_vlm = wrap(model, proc, frames="uniform", tokens="aot", cache=False, encoder=fx.small_encoder(), budget=vidsieve.Budget(frames=2, tokens=8))
    inp = stats_vlm.process(["<video> x"], [stats_vlm._group(fx.make_frames(2, seed=5), 1.0, 2, None)])
    pix = inp["pixel_values_videos"][0].to(torch.float32)
    tower = model.model.vision_tower
    with stats_vlm.capture_tower_stats([-1], False) as store, torch.no_grad():
        tower(pix)
    tower.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = tower(pix, output_attentions=True)
    finally:
        tower.set_attn_implementation("sdpa")
    ours = torch.stack(store["attention"][-1])
    ref = out.attentions[-1].float().sum(2).mean(1)  # [frames, L] column sums, mean over heads
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_wrap_errors() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    qwen, qproc = fx.build("qwen2_vl")
    _, lproc = fx.build("llava_onevision")
    with pytest.raises(AdapterError, match="processor"):
        wrap(qwen, lproc)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(AdapterError, match="no adapter.*Supported"):
        wrap(tiny, qproc)
    vlm = vidsieve.wrap(qwen, qproc, frames="uniform", tokens="none", budget=2, cache=False, encoder=fx.small_encoder())
    with pytest.raises(vidsieve.ParameterError, match="one prompt per video"):
        vlm.prepare([fx.make_frames(2)], ["a", "b"])
    with pytest.raises(vidsieve.ParameterError, match="uint8"):
        vlm.prepare(np.zeros((2, 8, 8, 3), np.float32), "a")


def test_array_input_and_text_generation() -> None:
    model, proc = fx.build("qwen2_vl")
    vlm = wrap(model, proc, frames="uniform", tokens="none", budget=vidsieve.Budget(frames=4), cache=False, encoder=fx.small_encoder())
    arr = fx.make_frames(6).pixels
    answer = vlm.generate(arr, "describe the video", fps=2.0, max_new_tokens=2)
    assert isinstance(answer, str)
    assert vlm.last_stats.frame_indices == [[0, 1, 4, 5]] or len(vlm.last_stats.frame_indices[0]) == 4
    out = vlm.generate_text(["is there a red ball ?", "yes"], max_new_tokens=2)
    assert isinstance(out, list) and len(out) == 2


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_tower_statistics_match_the_eager_attention_weights(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The q/k recomputed in the hook (rotary applied, per attention segment, window order for
    Qwen2.5) give the column sums of the weights the eager attention really computes."""
    import sys as _sys

    model, proc = fx.build(family)
    vlm = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=4))
    video = fx.make_frames(4, 60, 80, seed=6)
    inp = vlm.process([vlm.text_for("x")], [vlm._group(video, 4.0, 10, None)])
    mod = _sys.modules[type(model.model.visual).__module__]
    weights: list[torch.Tensor] = []
    orig = mod.eager_attention_forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        out, w = orig(*args, **kwargs)
        weights.append(w.detach())
        return out, w

    monkeypatch.setattr(mod, "eager_attention_forward", spy)
    visual = model.model.visual
    visual.config._attn_implementation = "eager"
    try:
        layer = len(visual.blocks) - 1
        with vlm.capture_tower_stats([layer], False) as store, torch.no_grad():
            vlm.encode(inp)
    finally:
        visual.config._attn_implementation = "sdpa"
    n_chunks = len(store["attention"][layer])
    last = weights[-n_chunks:]  # the last block's chunks
    ref = [w.float().sum(2).mean(1)[0] for w in last]
    for a, b in zip(store["attention"][layer], ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    grids = vlm.tower_stats_to_grid(store["attention"][layer], vlm.encode(inp)[1])
    assert grids[0].shape == (2, int(inp["video_grid_thw"][0, 1] * inp["video_grid_thw"][0, 2] // 4))


def test_qwen2_5_timestamp_temporal_positions() -> None:
    """temporal_positions="timestamps": each group's t offset is int(seconds * tokens_per_second)."""
    model, proc = fx.build("qwen2_5_vl")
    pix = fx.make_frames(6, seed=8).pixels
    idx = np.array([0, 3, 30, 33, 90, 93])
    video = vidsieve.Frames(pixels=pix, indices=idx, timestamps=idx / 10.0)  # groups start at 0, 3, 9 s
    vlm = wrap(model, proc, frames="uniform", tokens="none", cache=False, encoder=fx.small_encoder(),
               budget=vidsieve.Budget(frames=8), temporal_positions="timestamps")
    kw = vlm.prepare(video, "describe the video")
    tps = model.config.vision_config.tokens_per_second
    where = torch.nonzero(kw["input_ids"][0] == vlm.video_token_id).squeeze(1)
    t = kw["position_ids"][1, 0, where]
    per_group = where.numel() // 3
    starts = t.reshape(3, per_group)
    assert (starts == starts[:, :1]).all()
    assert (starts[:, 0] - starts[0, 0]).tolist() == [0, int(3.0 * tps), int(9.0 * tps)]
    default = keep_all("qwen2_5_vl").prepare(video, "describe the video")["position_ids"][1, 0, where]
    assert not torch.equal(default, t)  # the processor's rule spaces them evenly
    with pytest.raises(vidsieve.ParameterError):
        wrap(model, proc, temporal_positions="exact")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"frames": 5}, "frames"), ({"tokens": 5}, "tokens"), ({"encoder": 3}, "encoder"),
     ({"candidate_fps": 0}, "candidate_fps"), ({"candidate_fps": -1.0}, "candidate_fps"),
     ({"max_candidates": 0}, "max_candidates"), ({"budget": 0}, "budget"), ({"budget": "8"}, "budget")],
)
def test_wrap_refuses_bad_parameters(kwargs: dict[str, Any], name: str) -> None:
    model, proc = fx.build("qwen2_vl")
    with pytest.raises(vidsieve.ParameterError, match=f"The '{name}' parameter of Qwen2VLVideoLLM must be"):
        wrap(model, proc, **kwargs)


def test_call_refuses_bad_inputs() -> None:
    model, proc = fx.build("qwen2_vl")
    vlm = wrap(model, proc, frames="uniform", tokens="none", budget=2, cache=False, encoder=fx.small_encoder())
    with pytest.raises(vidsieve.ParameterError, match="'videos' parameter.*T >= 1"):
        vlm.prepare(np.zeros((0, 8, 8, 3), np.uint8), "a")
    with pytest.raises(vidsieve.ParameterError, match="'fps' parameter"):
        vlm.prepare(np.zeros((2, 8, 8, 3), np.uint8), "a", fps=0)
    with pytest.raises(vidsieve.ParameterError, match="'prompts' parameter"):
        vlm.prepare(fx.make_frames(2), None)  # type: ignore[arg-type]
    with pytest.raises(vidsieve.ParameterError, match="'prompts' parameter"):
        vlm.prepare([fx.make_frames(2)], [None])  # type: ignore[list-item]
    empty = vidsieve.Frames(pixels=np.zeros((0, 8, 8, 3), np.uint8), indices=np.zeros(0, np.int64), timestamps=np.zeros(0))
    with pytest.raises(vidsieve.ParameterError, match="'videos' parameter"):
        vlm.prepare(empty, "a")


def test_qwen3_timestamps_tell_true_presentation_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames with presentation timestamps that index / fps does not give (variable frame rate):
    the processor's per-group timestamps are the true times; constant-rate frames keep their
    integer indices (the plain processor's metadata)."""
    model, proc = fx.build("qwen3_vl")
    seen = fx.record_processor_calls(proc, monkeypatch)
    pix = fx.make_frames(4, seed=9).pixels
    idx = np.array([0, 10, 20, 30])
    ts = np.array([0.0, 0.25, 1.5, 1.9])  # not idx / fps for any single fps
    vlm = keep_all("qwen3_vl")
    vlm.prepare(vidsieve.Frames(pixels=pix, indices=idx, timestamps=ts), "describe the video", fps=20.0)
    md = seen[-1]["video_metadata"][0]
    got = proc._calculate_timestamps(list(md["frames_indices"]), md["fps"], 2)
    np.testing.assert_allclose(got, [(0.0 + 0.25) / 2, (1.5 + 1.9) / 2])
    vlm.prepare(vidsieve.Frames(pixels=pix, indices=idx, timestamps=idx / 20.0), "describe the video", fps=20.0)
    assert seen[-1]["video_metadata"][0]["frames_indices"] == idx.tolist()
