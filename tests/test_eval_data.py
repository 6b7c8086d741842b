"""Loaders of the official layouts, the miniature generator, and subtitle alignment."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from vidsieve.eval.longvideobench import load_longvideobench
from vidsieve.eval.miniature import make_miniature
from vidsieve.eval.prompts import videomme_prompt
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


# ---------------------------------------------------------------------------------------------
# --subtitle-rule lmms-uniform: lmms-eval 0.7.3's videomme_doc_to_text_subtitle, reproduced.
# Every case is an .srt file (or none), the video's fps and frame count, and frame_num.


_F = '<font color="white" size=".72c">{}</font>'


def _block(i: int, a: float, b: float, *texts: str) -> str:
    def t(s: float) -> str:
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        return f"{int(h):02d}:{int(m):02d}:{int(sec):02d},{round((sec % 1) * 1000):03d}"
    return f"{i}\n{t(a)} --> {t(b)}\n" + "\n".join(texts) + "\n"


def _lmms_cases() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    out["missing_file"] = dict(srt=None, fps=25.0, frames=250, n=32)
    out["empty_file"] = dict(srt="", fps=25.0, frames=250, n=32)
    out["no_line_on_sampled_frames"] = dict(srt=_block(1, 1.01, 1.02, _F.format("between samples")), fps=10.0, frames=1000, n=4)
    out["file_order_not_time_order"] = dict(
        srt="\n".join([_block(1, 8, 9, _F.format("late")), _block(2, 0, 1, _F.format("early")), _block(3, 4, 5, _F.format("middle"))]),
        fps=1.0, frames=10, n=10)
    out["font_tag_regex"] = dict(
        srt="\n".join([
            _block(1, 0, 2, "no tag at all"),
            _block(2, 2, 4, '<font color="yellow" size=".72c">other colour</font>'),
            _block(3, 4, 6, "before " + _F.format("inside") + " after"),
            _block(4, 6, 8, _F.format("first") + _F.format("second")),
            _block(5, 8, 10, _F.format("line one"), _F.format("line two")),
            _block(6, 10, 12, '<font color="white" size=".72c">unclosed'),
        ]), fps=2.0, frames=24, n=24)
    out["empty_font_entries"] = dict(
        srt="\n".join([_block(1, 0, 2, _F.format("a")), _block(2, 2, 4, _F.format("")), _block(3, 4, 6, _F.format("c"))]),
        fps=1.0, frames=6, n=6)
    out["identical_times_last_wins"] = dict(
        srt="\n".join([_block(1, 0, 3, _F.format("first version")), _block(2, 3, 6, _F.format("other")),
                       _block(3, 0, 3, _F.format("second version"))]),
        fps=1.0, frames=6, n=6)
    out["set_order_of_large_indices"] = dict(
        srt="\n".join(_block(i + 1, i, i + 1, _F.format(f"line {i}")) for i in range(300)), fps=1.0, frames=300, n=5)
    out["set_order_many"] = dict(
        srt="\n".join(_block(i + 1, i * 0.5, i * 0.5 + 0.5, _F.format(f"l{i}")) for i in range(700)), fps=30.0, frames=10500, n=32)
    out["all_frames"] = dict(
        srt="\n".join([_block(1, 0, 0.5, _F.format("x")), _block(2, 0.5, 1.0, _F.format("y"))]), fps=4.0, frames=4, n=-1)
    out["crlf_and_short_blocks"] = dict(
        srt=("1\r\n00:00:00,000 --> 00:00:02,000\r\n" + _F.format("crlf") + "\r\n\r\n2\r\n00:00:02,000 --> 00:00:04,000\r\n\r\n"
             "3\r\n00:00:04,000 --> 00:00:06,000\r\n" + _F.format("after a text-less block") + "\r\n"),
        fps=1.0, frames=6, n=6)
    out["short_millisecond_field"] = dict(
        srt="1\n00:00:01,5 --> 00:00:01,9\n" + _F.format("ms read as an integer") + "\n", fps=1000.0, frames=3000, n=3000)
    out["non_ascii"] = dict(
        srt="\n".join([_block(1, 0, 2, _F.format("日本語の字幕")), _block(2, 2, 4, _F.format("été"))]), fps=1.0, frames=4, n=4)
    return out


#: the subtitle block lmms-eval 0.7.3 builds for each case (text between "This video's subtitles
#: are listed below: \n" and "\nSelect the best answer"), recorded by running its
#: ``lmms_eval/tasks/videomme/utils.py`` unmodified on these files, with OpenCV's fps and frame
#: count replaced by the case's values.
LMMS_SNAPSHOT = {
    "missing_file": "No subtitles available",
    "empty_file": "",
    "no_line_on_sampled_frames": "",
    "file_order_not_time_order": "late\nearly\nmiddle",
    "font_tag_regex": "inside\nfirst\nline one",
    "empty_font_entries": "a\n\nc",
    "identical_times_last_wins": "second version\nother",
    "set_order_of_large_indices": "line 0\nline 224\nline 74\nline 299\nline 149",
    "set_order_many": "l0\nl135\nl519\nl270\nl654\nl22\nl406\nl541\nl158\nl293\nl677\nl428\nl45\nl180\nl564\nl699\nl316\nl67\nl451\nl203\nl587\nl338\nl90\nl474\nl225\nl609\nl361\nl632\nl112\nl496\nl248\nl383",
    "all_frames": "x\ny",
    "crlf_and_short_blocks": "crlf\nafter a text-less block",
    "short_millisecond_field": "ms read as an integer",
    "non_ascii": "日本語の字幕\nété",
}


def _write_case(root: Path, name: str, case: dict[str, Any]) -> Path | None:
    if case["srt"] is None:
        return None
    p = root / f"{name}.srt"
    p.write_bytes(case["srt"].encode("utf-8"))
    return p


def _vidsieve_block(path: Path | None, case: dict[str, Any]) -> str:
    from vidsieve.eval.subtitles import lmms_uniform_block

    return lmms_uniform_block(path, total_frames=case["frames"], fps=case["fps"], n=case["n"])


@pytest.mark.parametrize("name", sorted(_lmms_cases()))
def test_lmms_uniform_matches_the_lmms_eval_snapshot(tmp_path: Path, name: str) -> None:
    case = _lmms_cases()[name]
    assert _vidsieve_block(_write_case(tmp_path, name, case), case) == LMMS_SNAPSHOT[name]


def test_lmms_uniform_matches_installed_lmms_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cases against the lmms-eval installed here (skipped when it is not)."""
    import types

    pytest.importorskip("lmms_eval")
    utils = pytest.importorskip("lmms_eval.tasks.videomme.utils")
    meta: dict[str, dict[int, float]] = {}

    class Capture:  # OpenCV's fps and frame count, from the case
        def __init__(self, path: str) -> None:
            self.m = meta[path]

        def get(self, prop: int) -> float:
            return self.m[prop]

    monkeypatch.setattr(utils, "cv2", types.SimpleNamespace(CAP_PROP_FPS=5, CAP_PROP_FRAME_COUNT=7, VideoCapture=Capture))
    monkeypatch.setattr(utils, "base_cache_dir", str(tmp_path))
    cache = tmp_path / utils.cache_name
    (cache / "subtitle").mkdir(parents=True)
    doc = {"question": "Q?", "options": ["A. a", "B. b", "C. c", "D. d"]}
    for name, case in _lmms_cases().items():
        path = _write_case(cache / "subtitle", name, case)
        video = os.path.join(str(cache), os.path.join(str(cache), "data", name + ".mp4"))
        meta[video] = {5: case["fps"], 7: case["frames"]}
        prompt = utils.videomme_doc_to_text_subtitle({**doc, "videoID": name}, {"frame_num": case["n"]})
        ours = videomme_prompt(doc["question"], doc["options"], subtitles=_vidsieve_block(path, case))
        assert ours == prompt, name


def test_longvideobench_options_follow_lmms_eval_when_candidates_disagree(tmp_path: Path, mini: dict[str, Path]) -> None:
    """lmms-eval builds the options from option0..option4 (skipping "N/A"); when a record also has
    ``candidates`` that disagree, vidsieve follows option0..4 and warns once with the count."""
    recs = json.loads((mini["longvideobench"] / "lvb_val.json").read_text())[:3]
    agree = dict(recs[0], **{f"option{i}": c for i, c in enumerate(recs[0]["candidates"])})
    agree.update({f"option{i}": "N/A" for i in range(len(recs[0]["candidates"]), 5)})
    differ = dict(recs[1], candidates=["old a", "old b", "old c"], option0="new a", option1="new b",
                  option2="new c", option3="new d", option4="N/A", correct_choice=3)
    only_candidates = dict(recs[2])
    root = tmp_path / "lvb"
    root.mkdir()
    (root / "lvb_val.json").write_text(json.dumps([agree, differ, only_candidates]))
    with pytest.warns(UserWarning, match=r"1 record\(s\).*option0\.\.option4.*as lmms-eval does"):
        qs = load_longvideobench(root)
    assert list(qs[0].options) == list(recs[0]["candidates"])
    assert list(qs[1].options) == ["new a", "new b", "new c", "new d"] and qs[1].answer == "D"
    assert list(qs[2].options) == list(recs[2]["candidates"])
