"""The transformers 4.x route, run in a second interpreter that has transformers<5.

The project's environment has transformers 5, so this test needs another Python with
``transformers<5`` (4.57 checked) and vidsieve's dependencies; point ``VIDSIEVE_TF4_PYTHON`` at
it. The checks run there on the same tiny models: keep-all generation equals the plain model's
(greedy, and beam search with num_return_sequences), and under pruning the rotary embedding
receives each kept token's original position and, for the generated tokens, the positions of
the unpruned run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PY = os.environ.get("VIDSIEVE_TF4_PYTHON", "")
REPO = Path(__file__).resolve().parents[1]

CHECK = r'''
import sys, torch, transformers, vidsieve
from vidsieve.adapters.tiny import FAMILIES, make_frames
assert int(transformers.__version__.split(".")[0]) < 5, transformers.__version__
enc = lambda: vidsieve.create_encoder("pixel", size=32, lum_grid=4, grid=4)
PROMPTS = ["describe the video", "what happens after the man opens the door ?"]
fam = sys.argv[1]
m, p = FAMILIES[fam]()
vlm = vidsieve.wrap(m, p, frames="uniform", tokens="none", budget=vidsieve.Budget(frames=64), cache=False, encoder=enc())
assert vlm.legacy
videos = [make_frames(6, 60, 80, seed=1), make_frames(4 if "qwen" in fam else 6, 90, 60, seed=2)]
prepared = [vlm._group(*vlm._as_frames(v, None)[:3], None) for v in videos]
inp = vlm.process([vlm.text_for(x) for x in PROMPTS], prepared)
n = inp["input_ids"].shape[1]
assert torch.equal(m.generate(**inp, max_new_tokens=5, do_sample=False)[:, n:],
                   vlm.generate(videos, PROMPTS, max_new_tokens=5, return_ids=True)), "keep-all greedy"
if fam != "qwen3_vl":  # transformers 4.57's own Qwen3-VL fails video + beam search
    gk = dict(max_new_tokens=3, num_beams=2, num_return_sequences=2)
    assert torch.equal(m.generate(**inp, **gk)[:, n:], vlm.generate(videos, PROMPTS, return_ids=True, **gk)), "beams"
calls = []
h = m.model.language_model.rotary_emb.register_forward_pre_hook(
    lambda mod, a, k: calls.append(k.get("position_ids", a[1] if len(a) > 1 else None).clone()), with_kwargs=True)
m.generate(**inp, max_new_tokens=3, do_sample=False)
ref = list(calls); calls.clear()
vp = vidsieve.wrap(m, p, frames="uniform", tokens="ktv-tokens", budget=vidsieve.Budget(frames=64, tokens=9),
                   cache=False, encoder=enc())
vp.generate(videos, PROMPTS, max_new_tokens=3)
got = list(calls); h.remove()
ids, att = inp["input_ids"], inp["attention_mask"].bool()
pkw = vp.prepare(videos, PROMPTS)
new_att = pkw["attention_mask"].bool()
for b, sel in enumerate(pkw.selections):
    keep = torch.ones(ids.shape[1], dtype=torch.bool)
    where = torch.nonzero(ids[b] == vp.video_token_id).squeeze(1)
    vk = sel.keep_mask().reshape(-1)
    assert vk.sum() < vk.numel()
    keep[where] = torch.cat([vk, torch.ones(where.numel() - vk.numel(), dtype=torch.bool)])
    rows = torch.nonzero(keep & att[b]).squeeze(1)
    assert torch.equal(ref[0][..., b, rows], got[0][..., b, new_att[b]]), "prefill positions"
    for s in (1, 2):
        assert torch.equal(ref[s][..., b, :], got[s][..., b, :]), f"step {s} positions"
print("OK", fam, transformers.__version__)
'''


@pytest.mark.slow
@pytest.mark.skipif(not PY, reason="set VIDSIEVE_TF4_PYTHON to a Python with transformers<5 to run the 4.x route")
@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "llava_next_video"])
def test_transformers4_route(family: str) -> None:
    r = subprocess.run([PY, "-c", CHECK, family], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
