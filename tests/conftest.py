"""Shared fixtures: synthetic scene videos and an isolated feature cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidsieve.synth import SceneVideo, make_scene_video

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_VIDEO = REPO / "examples" / "big_buck_bunny.mp4"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache during tests."""
    monkeypatch.setenv("VIDSIEVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vidsieve-cache"))


@pytest.fixture(scope="session")
def scene_video(tmp_path_factory: pytest.TempPathFactory) -> SceneVideo:
    """4 scenes of unequal length at 10 fps, 96x128: cuts at frames 20, 50, 65."""
    path = tmp_path_factory.mktemp("videos") / "scenes.mp4"
    return make_scene_video(path, [20, 30, 15, 25], fps=10.0, size=(96, 128))
