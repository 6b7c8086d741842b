"""QuoTA on a wrapped model: per-frame p("A") from the VLM (batched) and CoT decoupling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

from vidsieve.adapters.scoring import FrameAsker, use_vlm_quota  # noqa: E402

import vidsieve  # noqa: E402

from . import adapters_fixtures as fx  # noqa: E402


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
def test_frame_asker_matches_single_frame_forward(family: str) -> None:
    model, proc = fx.build(family)
    vlm = vidsieve.wrap(model, proc, frames="uniform", tokens="none", budget=4, cache=False, encoder=fx.small_encoder())
    video = fx.make_frames(5, 60, 80, seed=9)
    feats = vidsieve.FrameFeatures(np.zeros((5, 2), np.float32), video.indices, video.timestamps)
    asker = FrameAsker(vlm, batch_size=2)
    rows = np.array([0, 2, 3, 4])
    with pytest.raises(vidsieve.ParameterError, match="through vlm.prepare"):
        asker(feats, rows, "x")  # no video is being selected
    with vlm.selecting(video):
        p = asker(feats, rows, "is there a red ball ? A yes B no")
    assert vlm.current_video is None
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))
    # reference: one frame at a time, no padding
    text = vlm.image_text("is there a red ball ? A yes B no")
    for j, r in enumerate(rows):
        inp = proc(text=[text], images=[video.pixels[r]], return_tensors="pt")
        with torch.no_grad():
            logits = model(**inp).logits[0, -1].float()
        ref = torch.softmax(logits, -1)[asker.answer_id()].item()
        assert p[j] == pytest.approx(ref, rel=1e-4, abs=1e-6)


def test_quota_with_vlm_scorer_and_decoupling_end_to_end() -> None:
    model, proc = fx.build("qwen2_vl")
    vlm = vidsieve.wrap(model, proc, frames="uniform", tokens="quota-assign", cache=False, encoder=fx.small_encoder(),
                        budget=vidsieve.Budget(frames=4, tokens=30))
    asked: list[str] = []
    sel = use_vlm_quota(vlm, batch_size=3, max_new_tokens=4, tokens_per_frame=20)
    inner = sel.scorer.ask
    sel.scorer.ask = lambda f, r, prompt: (asked.append(prompt), inner(f, r, prompt))[1]
    kw = vlm.prepare(fx.make_frames(8, 60, 80, seed=11), "what happens after the man opens the door ?")
    assert asked and "A. yes, B. no" in asked[0]
    st = vlm.last_stats
    assert st.tokens[0] <= 30 and 1 <= st.frames[0] <= 4
    assert int((kw["input_ids"] == vlm.video_token_id).sum()) == st.tokens[0]
