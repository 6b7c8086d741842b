"""Every registered frame selector x every registered token selector through the adapters.

The full cross product of ``vidsieve.list_selectors()`` x ``vidsieve.list_token_selectors()`` is
run; pair ``(a, b)`` (frame selector a, token selector b) runs on family ``(a + b) mod n``, and
any (family, selector) combination that rule misses (fewer selectors than families) gets one
case of its own, so every family meets every frame selector and every token selector while the
suite stays short (checked by ``test_rotation_covers_every_family``, also for more families). Each case prepares a tiny video, checks the
budget contract and runs one forward pass.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

import vidsieve  # noqa: E402

from . import adapters_fixtures as fx  # noqa: E402

FAMILIES = list(fx.FAMILIES)


def rotation(frame_sels: list[str], token_sels: list[str], families: list[str]) -> list[tuple[str, str, str]]:
    """(family, frame selector, token selector) cases covering every pair of selectors and every
    (family, selector) combination."""
    n = len(families)
    cases = [(families[(a + b) % n], fs, ts) for a, fs in enumerate(frame_sels) for b, ts in enumerate(token_sels)]
    have_fs = {(f, fs) for f, fs, _ in cases}
    have_ts = {(f, ts) for f, _, ts in cases}
    cases += [(f, fs, token_sels[0]) for f in families for fs in frame_sels if (f, fs) not in have_fs]
    cases += [(f, frame_sels[0], ts) for f in families for ts in token_sels if (f, ts) not in have_ts]
    return cases


CASES = rotation(vidsieve.list_selectors(), vidsieve.list_token_selectors(), FAMILIES)
BUDGET = vidsieve.Budget(frames=4, tokens=14)


def small_encoder() -> Any:
    return vidsieve.create_encoder("pixel", size=32, lum_grid=4, grid=4)


@pytest.mark.parametrize("extra", [0, 1, 2, 10])
def test_rotation_covers_every_family(extra: int) -> None:
    families = FAMILIES + [f"family{i}" for i in range(extra)]
    fss, tss = vidsieve.list_selectors(), vidsieve.list_token_selectors()
    cases = CASES if extra == 0 else rotation(fss, tss, families)
    assert {(f, fs) for f, fs, _ in cases} == set(itertools.product(families, fss))
    assert {(f, ts) for f, _, ts in cases} == set(itertools.product(families, tss))
    assert {(fs, ts) for _, fs, ts in cases} == set(itertools.product(fss, tss))


@pytest.mark.parametrize(("family", "frames", "tokens"), CASES)
def test_selector_pair(family: str, frames: str, tokens: str) -> None:
    model, proc = fx.build(family)
    vlm = vidsieve.wrap(model, proc, frames=frames, tokens=tokens, budget=BUDGET, encoder=small_encoder(), cache=False)
    kw = vlm.prepare(fx.make_frames(8, 60, 80, seed=7), "what happens after the man opens the door ?")
    st = vlm.last_stats
    n = int((kw["input_ids"] == vlm.video_token_id).sum())
    assert n == st.tokens[0] <= BUDGET.tokens
    assert 1 <= st.frames[0] <= BUDGET.frames
    assert st.frame_indices[0] == sorted(st.frame_indices[0])
    with torch.no_grad():
        logits = model(**kw).logits
    assert torch.isfinite(logits).all()


def test_video_file_end_to_end(scene_video: Any) -> None:
    """A path goes through probe -> candidate features -> frame selector -> decode -> processor."""
    model, proc = fx.build("qwen2_vl")
    vlm = vidsieve.wrap(model, proc, frames="uniform", tokens="ktv-tokens", encoder=small_encoder(),
                        budget=vidsieve.Budget(frames=4, tokens=20), candidate_fps=2.0)
    out = vlm.generate(str(scene_video.path), "describe the video", max_new_tokens=2)
    assert isinstance(out, str)
    st = vlm.last_stats
    assert st.frames == [4] and st.tokens[0] <= 20
    # candidates at 2 fps of a 10 fps video: source indices are multiples of 5
    assert all(i % 5 == 0 for i in st.frame_indices[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_example_runs_with_tiny_model(family: str, scene_video: Any) -> None:
    """examples/wrap_<family>.py --tiny runs end to end and prints the stats as JSON."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / f"wrap_{family}.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--video", str(scene_video.path),
                        "--max-new-tokens", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    stats = json.loads(out[out.index("{"):])
    assert stats["tokens"][0] <= 40 and 1 <= stats["frames"][0] <= 8
