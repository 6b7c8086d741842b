"""Loaders of the official layouts, the miniature generator, and subtitle alignment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from vidsieve.eval.longvideobench import load_longvideobench
from vidsieve.eval.miniature import make_miniature
from vidsieve.eval.questions import DatasetError
from vidsieve.eval.subtitles import (
    Line,
    lines_at,
    lmms_uniform_lines,
    load_subtitles,
    subtitle_text,
)
from vidsieve.eval.videomme import load_videomme


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_miniature(tmp_path_factory.mktemp("mini"), broken=True)


def test_videomme_layout_and_fields(mini: dict[str, Path]) -> None:
    root = mini["videomme"]
    assert (root / "videomme" / "test-00000-of-00001.parquet").exists()
    df = pd.read_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    assert list(df.columns) == ["video_id", "duration", "domain", "sub_category", "url", "videoID",
                                "question_id", "task_type", "question", "options", "answer"]
    qs = load_videomme(root)
    assert len(qs) == 15 and len({q.qid for q in qs}) == 15
    q = qs[0]
    assert q.options[0].startswith("A. ") and q.letters == ("A", "B", "C", "D") and q.answer in q.letters
    assert q.video == root / "data" / "vid000.mp4" and q.subtitle == root / "subtitle" / "vid000.srt"
    assert set(q.groups) == {"duration", "domain", "sub_category", "task_type"}
    assert {q.groups["duration"] for q in qs} == {"short", "medium", "long"}
    assert not (root / "data" / "vidmissing.mp4").exists()  # the broken question's video
    # the parquet file itself can be given, and the duration filter works
    assert len(load_videomme(root / "videomme" / "test-00000-of-00001.parquet")) == 15
    assert all(q.groups["duration"] == "short" for q in load_videomme(root, durations=("short",)))


def test_videomme_mkv_fallback(tmp_path: Path, mini: dict[str, Path]) -> None:
    root = tmp_path / "vm"
    shutil.copytree(mini["videomme"], root)
    (root / "data" / "vid001.mp4").rename(root / "data" / "vid001.mkv")
    q = next(q for q in load_videomme(root) if q.video_id == "vid001")
    assert q.video.name == "vid001.mkv"


def test_videomme_errors_name_the_problem(tmp_path: Path, mini: dict[str, Path]) -> None:
    with pytest.raises(DatasetError, match="Video-MME folder not found"):
        load_videomme(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"test-00000-of-00001\.parquet"):
        load_videomme(tmp_path / "empty")
    df = pd.read_parquet(mini["videomme"] / "videomme" / "test-00000-of-00001.parquet")
    (tmp_path / "bad" / "videomme").mkdir(parents=True)
    df.drop(columns=["task_type"]).to_parquet(tmp_path / "bad" / "videomme" / "test-00000-of-00001.parquet")
    with pytest.raises(DatasetError, match="lacks the Video-MME field.*task_type"):
        load_videomme(tmp_path / "bad")


def test_longvideobench_layout_and_fields(mini: dict[str, Path]) -> None:
    root = mini["longvideobench"]
    qs = load_longvideobench(root)
    assert len(qs) == 15
    five = [q for q in qs if len(q.options) == 5]
    assert five and all(q.letters == ("A", "B", "C", "D", "E") for q in five)
    q = qs[3]  # second video: subtitles start 2 s before the video
    assert q.subtitle is not None and q.subtitle.suffix == ".json" and q.subtitle_offset == 2.0
    assert set(q.groups) == {"duration_group", "question_category"}
    assert {q.groups["duration_group"] for q in qs} >= {"15", "60", "600"}


def test_longvideobench_option_fields_and_errors(tmp_path: Path, mini: dict[str, Path]) -> None:
    recs = json.loads((mini["longvideobench"] / "lvb_val.json").read_text())
    for r in recs:
        del r["candidates"]  # the HF parquet form: option0..option4 with "N/A"
    root = tmp_path / "lvb"
    root.mkdir()
    (root / "lvb_val.json").write_text(json.dumps(recs))
    qs = load_longvideobench(root)
    assert [len(q.options) for q in qs[:3]] == [4, 5, 2]
    with pytest.raises(DatasetError, match=r"lvb_val\.json does not exist"):
        load_longvideobench(tmp_path)
    bad = [dict(recs[0])]
    del bad[0]["question_category"]
    (root / "lvb_val.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="record 0 lacks the LongVideoBench field.*question_category"):
        load_longvideobench(root)
    bad = [dict(recs[0], correct_choice=7)]
    (root / "lvb_val.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="correct_choice 7 is outside"):
        load_longvideobench(root)


def test_srt_font_tags_and_alignment(mini: dict[str, Path]) -> None:
    lines = load_subtitles(mini["videomme"] / "subtitle" / "vid000.srt")
    assert lines and all("<font" not in ln.text for ln in lines)
    assert lines[0].start == 0.0 and lines[0].text.startswith("Now the ")
    # a frame inside the second line's span shows exactly that line
    mid = (lines[1].start + lines[1].end) / 2
    assert lines_at(lines, [mid]) == [lines[1]]
    assert lines_at(lines, []) == []


def test_lvb_json_subtitles_offset(mini: dict[str, Path]) -> None:
    p = mini["longvideobench"] / "subtitles" / "vid001_en.json"
    raw = json.loads(p.read_text())
    lines = load_subtitles(p, offset=2.0)
    assert lines[0].start == pytest.approx(0.0) and lines[0].text == raw[0]["line"]


def test_lmms_uniform_rule() -> None:
    lines = [Line(0.0, 1.0, "a"), Line(1.0, 2.0, "b"), Line(2.0, 2.5, "c"), Line(9.0, 10.0, "z")]
    # 10 s at 10 fps, 4 positions: linspace(0, 99, 4) -> frames 0, 33, 66, 99
    got = lmms_uniform_lines(lines, total_frames=100, fps=10.0, n=4)
    assert [ln.text for ln in got] == ["a", "z"]
    # "selected" alignment uses the frames actually shown
    assert subtitle_text(lines_at(lines, [1.5, 2.2])) == "b\nc"
