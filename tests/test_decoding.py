import subprocess
import time

import numpy as np
import pytest

from vidsieve import FrameIndexError, ParameterError, VideoDecodeError, VideoNotFoundError
from vidsieve.decoding import decode_frames, iter_frames, probe, sample_indices
from vidsieve.synth import make_scene_video

from .conftest import EXAMPLE_VIDEO


def test_probe_metadata(scene_video):
    m = probe(scene_video.path, codec=True)
    assert (m.num_frames, m.fps, m.width, m.height) == (90, 10.0, 128, 96)
    assert m.duration == pytest.approx(9.0)
    assert m.codec == "h264"


def test_decode_selected_frames_and_cuts_survive(scene_video):
    fr = decode_frames(scene_video.path, [65, 0, 20, 20, 49])
    assert fr.indices.tolist() == [0, 20, 49, 65]
    assert fr.pixels.shape == (4, 96, 128, 3) and fr.pixels.dtype == np.uint8
    assert fr.timestamps.tolist() == pytest.approx([0.0, 2.0, 4.9, 6.5])
    # consecutive frames across a cut differ much more than within a scene
    pair = decode_frames(scene_video.path, [19, 20, 21]).pixels.astype(float)
    assert np.abs(pair[1] - pair[0]).mean() > 5 * np.abs(pair[2] - pair[1]).mean()


def test_decode_time_resize_and_odd_size_fallback(scene_video):
    assert decode_frames(scene_video.path, [3], size=(64, 64)).pixels.shape == (1, 64, 64, 3)
    assert decode_frames(scene_video.path, [3], size=(37, 51)).pixels.shape == (1, 37, 51, 3)


def test_chunks_are_bounded(scene_video):
    sizes = [len(c) for c in iter_frames(scene_video.path, range(90), chunk=16)]
    assert max(sizes) <= 16 and sum(sizes) == 90


def test_sampling_by_fps_and_count(scene_video):
    m = probe(scene_video.path)
    assert sample_indices(m, fps=1.0).tolist() == list(range(0, 90, 10))
    assert sample_indices(m, count=4).tolist() == [0, 29, 59, 89]
    assert len(sample_indices(m, fps=10.0, max_frames=7)) == 7
    with pytest.raises(ParameterError, match="exactly one"):
        sample_indices(m)
    with pytest.raises(ParameterError, match="'fps' parameter"):
        sample_indices(m, fps=0)
    for bad in (0, -1):
        with pytest.raises(ParameterError, match="'max_frames' parameter"):
            sample_indices(m, fps=1.0, max_frames=bad)


def test_missing_file(tmp_path):
    with pytest.raises(VideoNotFoundError, match="Video not found"):
        probe(tmp_path / "missing.mp4")


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is text, not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        probe(p)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        probe(empty)


def test_truncated_file(tmp_path, scene_video):
    data = scene_video.path.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoDecodeError):
        probe(bad)
        decode_frames(bad, range(90))


def test_zero_frame_video(tmp_path):
    import imageio_ffmpeg

    p = tmp_path / "audio_only.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.5", str(p)],
        check=True,
    )
    with pytest.raises(VideoDecodeError):
        probe(p)


def test_frames_beyond_end(scene_video):
    with pytest.raises(FrameIndexError, match=r"has 90 frames .*requested \[90, 200\]"):
        decode_frames(scene_video.path, [1, 90, 200])
    with pytest.raises(FrameIndexError):
        decode_frames(scene_video.path, [-1])


def test_two_frames_do_not_decode_the_whole_video(tmp_path_factory):
    long = make_scene_video(tmp_path_factory.mktemp("long") / "long.mp4", [600] * 4, fps=25.0, size=(64, 96))
    path = long.path
    decode_frames(path, [0])  # warm up
    t0 = time.perf_counter()
    decode_frames(path, [5, 1200])
    two = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in iter_frames(path, range(2400), chunk=64):
        pass
    full = time.perf_counter() - t0
    assert two < 0.5 * full, (two, full)


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(VideoDecodeError, match="directory"):
        probe(tmp_path)


def test_decode_frames_copies_each_frame_into_one_output() -> None:
    """Chosen frames are copied one at a time from decord's own buffer into one output of
    their own memory mapping: no frame-sized numpy array exists besides the output (not a
    batch, not a copy of one). Pixels equal decord's own get_batch (the oracle)."""
    import mmap
    import tracemalloc

    import decord

    from vidsieve.decoding import decode_frames

    wanted = [70, 3, 41, 3, 88, 12, 55, 29, 64, 7, 19, 33, 47, 80, 91, 60, 25, 5]
    order = sorted(set(wanted))
    ref = decord.VideoReader(str(EXAMPLE_VIDEO), num_threads=1).get_batch(order).asnumpy()
    decode_frames(EXAMPLE_VIDEO, wanted)  # warm: decoder libraries, stream index
    tracemalloc.start()
    try:
        fr = decode_frames(EXAMPLE_VIDEO, wanted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(fr.indices, order)
    np.testing.assert_array_equal(fr.pixels, ref)
    one = fr.pixels[0].nbytes
    assert fr.pixels.nbytes == len(order) * one > 2**20
    base = fr.pixels
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    assert peak < one, (peak, one)


def test_frame_buffers_go_back_to_the_os_when_freed() -> None:
    """Freed output buffers do not stay resident. A plain heap array would: glibc raises its
    mmap threshold to the size of a freed mapped block, so the next block of that size comes
    from the heap and stays resident after it is freed (peak memory creeping call after call)."""
    import subprocess
    import sys

    child = (
        "import numpy as np, sys\n"
        "from vidsieve.decoding import frame_buffer\n"
        "alloc = frame_buffer if sys.argv[1] == 'frame_buffer' else (lambda s: np.empty(s, np.uint8))\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20\n"
        "base = rss()\n"
        "for _ in range(3):\n"
        "    a = alloc((24, 360, 640, 3)); a[:] = 1; del a\n"
        "print(rss() - base)\n"
    )
    held = {}
    for how in ("frame_buffer", "heap"):
        r = subprocess.run([sys.executable, "-c", child, how], capture_output=True, text=True, check=True)
        held[how] = float(r.stdout.strip())
    assert held["frame_buffer"] < 2, held  # MB still resident after three 16.6 MB outputs
    assert held["heap"] > 10, held  # what it guards against (glibc's dynamic threshold)


def test_as_numpy_reads_decord_batches_without_a_copy_and_falls_back() -> None:
    import decord

    from vidsieve.decoding import as_numpy

    vr = decord.VideoReader(str(EXAMPLE_VIDEO), num_threads=1)
    want = vr.get_batch([0, 9]).asnumpy()
    got = as_numpy(vr.get_batch([0, 9]))
    np.testing.assert_array_equal(got, want)
    assert got.base is not None and not got.flags.owndata  # a view of decord's memory

    class NoDLPack:  # an older decord: the copy is made
        def asnumpy(self) -> np.ndarray:
            return want.copy()

    np.testing.assert_array_equal(as_numpy(NoDLPack()), want)


def test_probe_then_decode_opens_the_file_once(scene_video, monkeypatch) -> None:
    """The frame stage probes, then decodes the chosen frames: one reader serves both (opening
    parses the whole stream index); after clear_caches the next call opens it afresh."""
    import vidsieve.decoding as dec

    opened: list[str] = []
    real = dec.open_reader

    def counting(path, size=None):  # type: ignore[no-untyped-def]
        opened.append(f"{path}:{size}")
        return real(path, size=size)

    monkeypatch.setattr(dec, "open_reader", counting)
    dec.clear_caches()
    meta = probe(scene_video.path)
    fr = decode_frames(scene_video.path, [3, 40, 77])
    assert len(opened) == 1 and fr.pixels.shape == (3, meta.height, meta.width, 3)
    again = decode_frames(scene_video.path, [3, 40, 77])  # the reader was handed back
    np.testing.assert_array_equal(again.pixels, fr.pixels)
    assert len(opened) == 1
    dec.clear_caches()
    probe(scene_video.path)
    assert len(opened) == 2
    with pytest.raises(FrameIndexError):
        decode_frames(scene_video.path, [10**6])
    probe(scene_video.path)  # the failed call did not keep its reader
    assert len(opened) == 3
