"""The bundled multi-shot demo video shows what the README says it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vidsieve
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO = EXAMPLES / "demo_multishot.mp4"
#: shot starts in seconds, as examples/make_demo_video.py builds them; bunny shots 3 and 7.
STARTS = np.array([0, 4, 16, 18, 21.5, 30.5, 32, 38, 39.5, 49.5, 52])


def _shot(t: np.ndarray) -> np.ndarray:
    return np.searchsorted(STARTS, t, side="right") - 1


@pytest.fixture(scope="module")
def demo():
    if not DEMO.exists():
        pytest.fail("examples/demo_multishot.mp4 is missing: run examples/make_demo_video.py")
    enc = PixelEncoder()
    feats = extract_features(DEMO, enc, fps=2.0, cache=False, progress=False)
    query = enc.embed_query(np.asarray(Image.open(EXAMPLES / "query_bunny.jpg").convert("RGB")))
    return feats, query


def test_demo_is_small_and_multi_shot(demo):
    feats, _ = demo
    assert DEMO.stat().st_size < 2_000_000
    assert feats.duration == pytest.approx(60.0, abs=0.2)
    scenes = vidsieve.create_selector("kframes", min_scene=0.0).scenes(feats)
    assert len(scenes) >= 9  # 11 shots, a cosine detector on pixel features finds most


def test_selectors_differ_on_the_demo(demo):
    """Uniform at 8 frames misses the short bunny insert; the query-aware selectors find it."""
    feats, query = demo
    uni = vidsieve.create_selector("uniform").select(feats, budget=8, query=query)
    assert 7 not in set(_shot(uni.timestamps).tolist())
    for name in ("kframes", "teacher"):
        sel = vidsieve.create_selector(name).select(feats, budget=8, query=query)
        assert 7 in set(_shot(sel.timestamps).tolist()), name
