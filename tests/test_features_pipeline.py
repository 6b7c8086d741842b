import os

import numpy as np
import pytest

from vidsieve import Budget, ParameterError
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features
from vidsieve.pipeline import Pipeline


def test_cache_hit_skips_decode_and_matches(scene_video, tmp_path):
    t1: dict = {}
    a = extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False, timings=t1)
    t2: dict = {}
    b = extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False, timings=t2)
    assert t1["cache_hit"] == 0.0 and t2["cache_hit"] == 1.0
    assert np.array_equal(a.embeddings, b.embeddings) and np.array_equal(a.grid, b.grid)
    assert np.array_equal(a.indices, b.indices) and a.indices.tolist() == list(range(0, 90, 5))
    assert a.source == b.source == str(scene_video.path)


def test_cache_key_changes_with_sampling_encoder_and_file(scene_video, tmp_path):
    extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False)
    t: dict = {}
    extract_features(scene_video.path, PixelEncoder(), fps=1.0, cache=tmp_path, progress=False, timings=t)
    assert t["cache_hit"] == 0.0
    extract_features(scene_video.path, PixelEncoder(lum_grid=8), fps=2.0, cache=tmp_path, progress=False, timings=t)
    assert t["cache_hit"] == 0.0
    st = os.stat(scene_video.path)
    os.utime(scene_video.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False, timings=t)
    assert t["cache_hit"] == 0.0


def test_corrupt_cache_entry_is_recomputed(scene_video, tmp_path):
    extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False)
    (entry,) = list((tmp_path / "features").glob("*.npz"))
    entry.write_bytes(b"garbage")
    t: dict = {}
    f = extract_features(scene_video.path, PixelEncoder(), fps=2.0, cache=tmp_path, progress=False, timings=t)
    assert t["cache_hit"] == 0.0 and len(f) == 18
    assert not list((tmp_path / "features").glob("*.tmp*"))


def test_pipeline_runs_end_to_end(scene_video):
    res = Pipeline(frames="uniform", tokens="none", progress=False).run(scene_video.path, budget=Budget(frames=4, tokens=300))
    assert res.selection.indices.tolist() == [0, 20, 50, 80]  # linspace over 9 candidates at 1 fps
    assert res.frames is not None and res.frames.pixels.shape == (4, 96, 128, 3)
    assert res.tokens is not None and res.tokens.total == 300
    assert set(res.timings) >= {"decode", "encode", "select", "decode_selected", "select_tokens"}


def test_pipeline_image_query_reaches_selector(scene_video):
    from vidsieve.synth import render_frame

    needle = render_frame(scene_video.scenes[2].look, 0, (96, 128))
    res = Pipeline(frames="uniform", progress=False).run(scene_video.path, budget=2, query=needle)
    assert res.query is not None and res.query.embedding is not None


def test_pipeline_bad_component():
    with pytest.raises(ParameterError, match="'frames' parameter of Pipeline"):
        Pipeline(frames=3)  # type: ignore[arg-type]


def test_unwritable_cache_dir_warns_once_and_runs_without_cache(scene_video, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("VIDSIEVE_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="cannot be used") as rec:
        a = extract_features(scene_video.path, PixelEncoder(), fps=2.0, progress=False)
        b = extract_features(scene_video.path, PixelEncoder(), fps=2.0, progress=False)
    assert len([w for w in rec if "cannot be used" in str(w.message)]) == 1
    assert len(a) == len(b) == 18 and np.array_equal(a.embeddings, b.embeddings)


def test_temp_file_of_a_killed_writer_is_cleaned(scene_video, tmp_path):
    import signal
    import subprocess
    import sys

    # a writer SIGKILLed in the middle of writing its cache entry leaves its temp file behind
    child = (
        "import os, signal, numpy as np\n"
        "import vidsieve.features as F\n"
        "from vidsieve.encoders.pixel import PixelEncoder\n"
        "def dying_savez(path, **arrays):\n"
        "    open(path, 'wb').write(b'PK partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "F.np.savez = dying_savez\n"
        f"F.extract_features({str(scene_video.path)!r}, PixelEncoder(), fps=2.0, cache={str(tmp_path)!r}, progress=False)\n"
    )
    r = subprocess.run([sys.executable, "-c", child], capture_output=True)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-500:]
    assert len(list((tmp_path / "features").glob("*.tmp.npz"))) == 1
    t: dict = {}
    extract_features(scene_video.path, PixelEncoder(), fps=1.0, cache=tmp_path, progress=False, timings=t)
    assert t["cache_hit"] == 0.0
    assert not list((tmp_path / "features").glob("*.tmp.npz"))
    assert len(list((tmp_path / "features").glob("*.npz"))) == 1
