"""The runner: rows, error rows, metrics, resume after SIGKILL, sharding, CLI and reports.

All with the deterministic fake answerer (real decoding, no model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vidsieve.eval.answerers import FakeAnswerer
from vidsieve.eval.longvideobench import load_longvideobench
from vidsieve.eval.metrics import compute_metrics
from vidsieve.eval.miniature import make_miniature
from vidsieve.eval.report import compare_runs
from vidsieve.eval.runner import RowWriter, RunConfig, read_rows, run_questions
from vidsieve.eval.videomme import load_videomme

from vidsieve.errors import VidsieveError

# every field that must not change between an interrupted and an uninterrupted run
STABLE = ("id", "output", "parsed", "correct", "unparsed", "error", "frames", "prompt", "answer")


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_miniature(tmp_path_factory.mktemp("mini"), broken=True)


def _cfg(bench: str, data: Path, out: Path, **kw: Any) -> RunConfig:
    parser = "mcq" if bench == "videomme" else "legacy"
    return RunConfig(benchmark=bench, data=str(data), model="fake", out=str(out), parser=parser, **kw)


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def _stable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(json.dumps(r.get(k), sort_keys=True) for k in STABLE) for r in rows]


def _metrics_wo_timing(out: Path) -> dict[str, Any]:
    m = json.loads((out / "metrics.json").read_text())
    m.pop("timing")
    return m


def test_videomme_run_rows_errors_metrics(mini: dict[str, Path], tmp_path: Path) -> None:
    qs = load_videomme(mini["videomme"])
    out = tmp_path / "run"
    m = run_questions(qs, FakeAnswerer(budget_frames=8), _cfg("videomme", mini["videomme"], out, subtitles=True),
                      progress=False)
    assert m is not None
    rows = _rows(out)
    assert [r["id"] for r in rows] == [q.qid for q in qs]
    errs = [r for r in rows if r["error"]]
    assert {r["video_id"] for r in errs} == {"vidmissing", "vidcorrupt"} and len(errs) == 6
    assert any("VideoNotFoundError" in r["error"] for r in errs)
    assert any("VideoDecodeError" in r["error"] for r in errs)
    ok = [r for r in rows if not r["error"]]
    assert all(r["num_frames"] == 8 and len(r["timestamps"]) == 8 for r in ok)
    assert all(r["prompt"].startswith("This video's subtitles are listed below: \nNow the") for r in ok)
    # metrics recomputed from the rows agree; accuracy counts errors and unparsed as wrong
    assert m["n"] == 15 and m["errors"] == 6
    assert m["correct"] == sum(r["correct"] for r in ok)
    assert m["accuracy"] == pytest.approx(100 * m["correct"] / 15, abs=1e-3)
    assert m["unparsed"] == sum(r["unparsed"] for r in ok)
    assert sum(v["n"] for v in m["by"]["duration"].values()) == 15
    assert set(m["by"]) == {"duration", "domain", "sub_category", "task_type"}
    # per-video reuse: first question of each video decodes, the others reuse
    assert m["timing"]["questions_without_reuse"] == 3 and m["timing"]["questions_with_reuse"] == 6
    run = json.loads((out / "run.json").read_text())
    for key in ("versions", "commit", "machine", "protocol", "answerer", "config"):
        assert key in run
    assert run["status"] == "finished" and run["protocol"]["parser"] == "mcq"
    assert (out / "report.html").exists() and (out / "report.png").stat().st_size > 1000


def test_subtitle_rules_and_parser_choice(mini: dict[str, Path], tmp_path: Path) -> None:
    qs = load_videomme(mini["videomme"])[:3]
    a = run_questions(qs, FakeAnswerer(budget_frames=2), _cfg("videomme", mini["videomme"], tmp_path / "a", subtitles=True),
                      progress=False)
    b = run_questions(qs, FakeAnswerer(budget_frames=2),
                      _cfg("videomme", mini["videomme"], tmp_path / "b", subtitles=True, subtitle_rule="lmms-uniform"),
                      progress=False)
    assert a is not None and b is not None
    pa, pb = _rows(tmp_path / "a")[0]["prompt"], _rows(tmp_path / "b")[0]["prompt"]
    # two frames shown (first and last) -> two subtitle lines; lmms-uniform takes 32 positions
    assert pa.count("Now the") == 2 and pb.count("Now the") > 2


def test_lvb_conventions(mini: dict[str, Path], tmp_path: Path) -> None:
    qs = load_longvideobench(mini["longvideobench"])
    m = run_questions(qs, FakeAnswerer(budget_frames=4, accuracy=0.3),
                      _cfg("longvideobench", mini["longvideobench"], tmp_path / "lvb", subtitles=True), progress=False)
    assert m is not None
    assert set(m["by"]) == {"duration_group", "question_category"}
    assert list(m["by"]["duration_group"]) == ["15", "60", "600", "3600"]
    rows = _rows(tmp_path / "lvb")
    assert m["unparsed"] > 0  # the fake says "I cannot tell" sometimes
    # seeded-random: unparsed rows get a per-question random letter; parsed rows unchanged
    assert m["accuracy_seeded_random"] >= m["accuracy"]
    again = compute_metrics(rows, benchmark="longvideobench", seed=0)
    assert again["accuracy_seeded_random"] == m["accuracy_seeded_random"]
    assert (compute_metrics(rows, benchmark="longvideobench", seed=0)["conventions"]["unparsed_wrong"]["accuracy"]
            == m["accuracy"])


def test_resume_refuses_other_settings(mini: dict[str, Path], tmp_path: Path) -> None:
    qs = load_videomme(mini["videomme"])[:2]
    out = tmp_path / "r"
    run_questions(qs, FakeAnswerer(budget_frames=2), _cfg("videomme", mini["videomme"], out), progress=False)
    with pytest.raises(VidsieveError, match="other settings.*budget_frames: 32 -> 5"):
        run_questions(qs, FakeAnswerer(), _cfg("videomme", mini["videomme"], out, budget_frames=5), progress=False)


def test_torn_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    p = tmp_path / "rows.0.jsonl"
    w = RowWriter(p)
    w.append({"id": "a", "x": 1})
    w.close()
    with open(p, "ab") as f:
        f.write(b'{"id": "b", "x"')  # a write cut short by a kill
    assert list(read_rows(tmp_path)) == ["a"]
    w = RowWriter(p)  # repairs the tail before appending
    w.append({"id": "b", "x": 2})
    w.close()
    assert read_rows(tmp_path) == {"a": {"id": "a", "x": 1}, "b": {"id": "b", "x": 2}}


def _cli(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "vidsieve.eval", *args, "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _count_lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.glob("rows.*.jsonl"))


@pytest.mark.timeout(120)
def test_sigkill_resume_matches_uninterrupted(mini: dict[str, Path], tmp_path: Path) -> None:
    args = ["videomme", "--data", str(mini["videomme"]), "--model", "fake:acc=0.6,delay=0.1",
            "--budget-frames", "6", "--subtitles", "on"]
    ref = tmp_path / "ref"  # the uninterrupted run, in-process (same deterministic answers)
    run_questions(load_videomme(mini["videomme"]), FakeAnswerer(budget_frames=6, accuracy=0.6),
                  _cfg("videomme", mini["videomme"], ref, subtitles=True, budget_frames=6), progress=False)
    out = tmp_path / "killed"
    for stop_at in (1, 5):  # kill twice at different points, then finish
        p = _cli([*args, "--out", str(out)])
        t0 = time.time()
        while _count_lines(out) < stop_at and time.time() - t0 < 60 and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert not (out / "results.jsonl").exists()
        assert stop_at <= _count_lines(out) < 15
    with open(out / "rows.0.jsonl", "ab") as f:  # and a torn last line, as a kill mid-write leaves
        f.write(b'{"id": "001-')
    p = _cli([*args, "--out", str(out)])
    assert p.wait(60) == 0, p.stderr.read().decode()[-2000:] if p.stderr else ""
    rows = _rows(out)
    assert len(rows) == 15 and len({r["id"] for r in rows}) == 15
    assert _stable(rows) == _stable(_rows(ref))
    assert _metrics_wo_timing(out) == _metrics_wo_timing(ref)
    assert len(json.loads((out / "run.json").read_text())["resumed_at"]) == 2


@pytest.mark.timeout(120)
def test_accelerate_two_process_sharding(mini: dict[str, Path], tmp_path: Path) -> None:
    out, ref = tmp_path / "sharded", tmp_path / "single"
    common = ["longvideobench", "--data", str(mini["longvideobench"]), "--model", "fake", "--budget-frames", "4"]
    run_questions(load_longvideobench(mini["longvideobench"]), FakeAnswerer(budget_frames=4),
                  _cfg("longvideobench", mini["longvideobench"], ref, budget_frames=4, max_new_tokens=32),
                  progress=False)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29731",
           "-m", "vidsieve.eval", *common, "--out", str(out), "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=110)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    shard_rows = {i: [json.loads(x) for x in (out / f"rows.{i}.jsonl").read_text().splitlines()] for i in (0, 1)}
    assert shard_rows[0] and shard_rows[1]
    vids0 = {r["video_id"] for r in shard_rows[0]}
    vids1 = {r["video_id"] for r in shard_rows[1]}
    assert not vids0 & vids1  # sharded by video
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert _stable(_rows(out)) == _stable(_rows(ref))
    assert _metrics_wo_timing(out) == _metrics_wo_timing(ref)


def test_cli_and_compare_report(mini: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vidsieve.cli import main

    runs = []
    for bf in (2, 4):
        out = tmp_path / f"bf{bf}"
        rc = main(["eval", "videomme", "--data", str(mini["videomme"]), "--model", "fake", "--budget-frames",
                   str(bf), "--budget-tokens", str(196 * bf), "--out", str(out), "--limit", "6", "--no-progress"])
        assert rc == 0
        runs.append(str(out))
        assert json.loads((out / "metrics.json").read_text())["n"] == 6
    assert "videomme: accuracy" in capsys.readouterr().out
    rc = main(["eval", "report", *runs, "--out", str(tmp_path / "rep")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "bf2" in table and "bf4" in table and "accuracy" in table
    assert (tmp_path / "rep" / "accuracy_vs_tokens_videomme.png").stat().st_size > 1000
    res = compare_runs(runs, tmp_path / "rep2")
    assert [r["budget_tokens"] for r in res["rows"]] == [392, 784]
    # user mistakes: one clear line, exit code 2
    assert main(["eval", "videomme", "--data", str(tmp_path / "none"), "--model", "fake", "--out", str(tmp_path / "x")]) == 2
    assert "Video-MME folder not found" in capsys.readouterr().err
    assert main(["eval", "videomme", "--data", str(mini["videomme"]), "--model", "fake", "--out", str(tmp_path / "y"),
                 "--parser", "nope"]) == 2
    assert main(["eval", "report", str(tmp_path / "none")]) == 2


def test_retry_errors_after_the_video_appears(mini: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "vm"
    shutil.copytree(mini["videomme"], root)
    qs = [q for q in load_videomme(root) if q.video_id in ("vid000", "vidmissing")]
    out = tmp_path / "run"
    cfg = _cfg("videomme", root, out, budget_frames=3)
    m1 = run_questions(qs, FakeAnswerer(budget_frames=3), cfg, progress=False)
    assert m1 is not None and m1["errors"] == 3
    shutil.copy(root / "data" / "vid000.mp4", root / "data" / "vidmissing.mp4")
    m2 = run_questions(qs, FakeAnswerer(budget_frames=3), cfg, progress=False)  # plain resume: kept
    assert m2 is not None and m2["errors"] == 3
    m3 = run_questions(qs, FakeAnswerer(budget_frames=3), cfg, progress=False, retry_errors=True)
    assert m3 is not None and m3["errors"] == 0
    rows = _rows(out)
    assert len(rows) == 6 and all(r["error"] is None for r in rows)


def test_cli_rejects_unknown_selector_names_for_every_model(mini: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The fake answerer ignores the selectors, yet an unknown name must fail as with a real model
    (before any model is loaded or any row written), with the registry's message and exit code 2."""
    import vidsieve
    from vidsieve.cli import main

    base = ["eval", "videomme", "--data", str(mini["videomme"]), "--limit", "1", "--no-progress"]
    for model in ("fake", "fake:0.9", "tiny"):
        out = tmp_path / model.replace(":", "_")
        assert main([*base, "--model", model, "--out", str(out), "--frames", "nosuch"]) == 2
        err = capsys.readouterr().err
        assert "Unknown frame selector 'nosuch'. Available: " in err
        assert ", ".join(vidsieve.list_selectors()) in err
        assert main([*base, "--model", model, "--out", str(out), "--tokens", "nosuch"]) == 2
        err = capsys.readouterr().err
        assert "Unknown token selector 'nosuch'. Available: " in err
        assert ", ".join(vidsieve.list_token_selectors()) in err
        assert not out.exists()  # refused before the run folder was created
    # a bad selector parameter is refused for the fake model too
    assert main([*base, "--model", "fake", "--out", str(tmp_path / "p"), "--frames", "uniform",
                 "--selector-params", '{"nosuch_param": 1}']) == 2
    assert "unknown parameter" in capsys.readouterr().err
    # known names still run with the fake model
    assert main([*base, "--model", "fake", "--out", str(tmp_path / "ok"), "--frames", "ktv", "--tokens", "aot"]) == 0
    assert "videomme: accuracy" in capsys.readouterr().out


def test_tail_torn_inside_a_multibyte_character_resumes(tmp_path: Path) -> None:
    """A kill can cut a row inside a UTF-8 character: reading and resuming must both survive it."""
    p = tmp_path / "rows.0.jsonl"
    w = RowWriter(p)
    w.append({"id": "a", "q": "Qu'est-ce que c'est ? été 日本"})
    w.close()
    torn = (json.dumps({"id": "b", "q": "日本語"}, ensure_ascii=False) + "\n").encode("utf-8")
    cut = torn.index("本".encode()) + 1  # inside the 3-byte character
    with open(p, "ab") as f:
        f.write(torn[:cut])
    with pytest.raises(UnicodeDecodeError):
        torn[:cut].decode("utf-8")  # the oracle: the tail really is invalid UTF-8
    assert list(read_rows(tmp_path)) == ["a"]
    w = RowWriter(p)
    w.append({"id": "b", "q": "日本語"})
    w.close()
    assert read_rows(tmp_path) == {"a": {"id": "a", "q": "Qu'est-ce que c'est ? été 日本"}, "b": {"id": "b", "q": "日本語"}}


def test_a_corrupt_middle_line_with_bad_bytes_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "rows.0.jsonl"
    p.write_bytes(b'{"id": "a"}\n{"id": "\xe6\x97"}\n{"id": "c"}\n')
    assert list(read_rows(tmp_path)) == ["a", "c"]


class _DiskFull:
    """Makes every write to a file under ``folders`` fail half-way (ENOSPC)."""

    def __init__(self, real_open: Any, folders: set[Path]) -> None:
        self.real_open = real_open
        self.folders = folders
        self.hits = 0

    def __call__(self, file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        f = self.real_open(file, mode, *args, **kw)
        if isinstance(file, int) or Path(file).parent not in self.folders or not any(m in mode for m in "wax"):
            return f
        self.hits += 1
        real_write = f.write

        def write(data: Any) -> int:
            real_write(data[: len(data) // 2])
            f.flush()
            raise OSError(28, "No space left on device")

        f.write = write
        return f


def test_reports_are_written_atomically(mini: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while writing a report leaves the previous report intact and no temp file."""
    import builtins
    import io

    from vidsieve.eval.report import write_run_report

    qs = load_videomme(mini["videomme"])[:2]
    out, rep = tmp_path / "run", tmp_path / "rep"
    run_questions(qs, FakeAnswerer(budget_frames=2), _cfg("videomme", mini["videomme"], out), progress=False)
    compare_runs([out], rep)
    before = {p: p.read_bytes() for d in (out, rep) for p in d.iterdir()}
    assert {p.name for p in before} >= {"report.html", "report.png", "report.csv", "accuracy_vs_tokens_videomme.png"}
    full = _DiskFull(builtins.open, {out, rep})
    monkeypatch.setattr(builtins, "open", full)
    monkeypatch.setattr(io, "open", full)
    with pytest.raises(OSError, match="No space left"):
        write_run_report(out)
    with pytest.raises(OSError, match="No space left"):
        compare_runs([out], rep)
    monkeypatch.undo()
    assert full.hits >= 2
    after = {p: p.read_bytes() for d in (out, rep) for p in d.iterdir()}
    assert after == before  # same files (no temp file left), same bytes


def test_subtitle_file_without_a_line_on_the_frames(mini: dict[str, Path], tmp_path: Path) -> None:
    """lmms-uniform (lmms-eval): an .srt with no line on the sampled frames gives an empty block;
    the default rule says "No subtitles available" when no line is on the frames shown."""
    import shutil

    root = tmp_path / "vm"
    shutil.copytree(mini["videomme"], root)
    (root / "subtitle" / "vid000.srt").write_text(
        '1\n00:00:00,001 --> 00:00:00,002\n<font color="white" size=".72c">too short to be seen</font>\n',
        encoding="utf-8")
    qs = [q for q in load_videomme(root) if q.video_id == "vid000"][:1]
    prompts = {}
    for rule in ("selected", "lmms-uniform"):
        out = tmp_path / rule
        run_questions(qs, FakeAnswerer(budget_frames=4), _cfg("videomme", root, out, subtitles=True, subtitle_rule=rule),
                      progress=False)
        prompts[rule] = _rows(out)[0]["prompt"]
    head = "This video's subtitles are listed below: \n"
    assert prompts["selected"].startswith(head + "No subtitles available\nSelect the best answer")
    assert prompts["lmms-uniform"].startswith(head + "\nSelect the best answer")


def test_lvb_metrics_report_both_random_fallbacks() -> None:
    """metrics.json: vidsieve's per-question seeded fallback and lmms-eval's global-stream one
    (Python's random seeded once, one random.choice per unparsed answer, in annotation order)."""
    import random

    rng = np.random.default_rng(7)
    rows = []
    for i in range(60):
        letters = list("ABCDE"[: int(rng.integers(2, 6))])
        unparsed = bool(rng.random() < 0.5)
        rows.append({"id": f"q{i}", "letters": letters, "answer": letters[int(rng.integers(len(letters)))],
                     "unparsed": unparsed, "correct": (not unparsed) and bool(rng.random() < 0.5),
                     "error": "VideoNotFoundError: x" if i == 3 else None,
                     "groups": {"duration_group": "15", "question_category": "T3O"}})
    m = compute_metrics(rows, benchmark="longvideobench", seed=0)
    state = random.getstate()
    random.seed(0)  # the oracle: lmms-eval's own calls on the global stream
    lmms = 0
    for r in rows:
        if r["error"]:
            continue
        pred = random.choice(r["letters"]) if r["unparsed"] else (r["answer"] if r["correct"] else "")
        lmms += pred == r["answer"]
    random.setstate(state)
    conv = m["conventions"]
    assert conv["lmms_eval_global_random"]["accuracy"] == pytest.approx(100 * lmms / 60, abs=1e-3)
    assert m["accuracy_lmms_eval_global_random"] == conv["lmms_eval_global_random"]["accuracy"]
    assert m["accuracy_seeded_random"] == conv["seeded_random"]["accuracy"]
    assert conv["lmms_eval_global_random"]["by"]["duration_group"]["15"]["n"] == 60
    assert random.getstate() == state  # the metrics never touch the global stream


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_accelerate_cpu_flag_refuses_to_run_as_one_process(mini: dict[str, Path], tmp_path: Path) -> None:
    """`accelerate launch --cpu --num_processes 2` starts ONE process (accelerate starts several
    CPU processes only through mpirun): the run must say so instead of silently not sharding."""
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "cpu"
    cmd = [str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vidsieve.eval", "longvideobench",
           "--data", str(mini["longvideobench"]), "--model", "fake", "--out", str(out), "--no-progress"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=110)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "vidsieve: error: accelerate launch --cpu started a single process" in err
    assert "--multi_gpu --num_processes" in err and "torchrun --nproc_per_node" in err
    assert not (out / "rows.0.jsonl").exists()


@pytest.mark.timeout(120)
def test_mpirun_style_environment_shards(mini: dict[str, Path], tmp_path: Path) -> None:
    """accelerate's multi-CPU route (`accelerate launch --cpu --mpirun_hostfile ...`) runs under
    mpirun, which names ranks in OMPI_COMM_WORLD_* (not RANK/WORLD_SIZE): two processes given
    exactly that environment shard by video and merge like torchrun's."""
    out, ref = tmp_path / "mpi", tmp_path / "single"
    common = ["longvideobench", "--data", str(mini["longvideobench"]), "--model", "fake", "--budget-frames", "4"]
    run_questions(load_longvideobench(mini["longvideobench"]), FakeAnswerer(budget_frames=4),
                  _cfg("longvideobench", mini["longvideobench"], ref, budget_frames=4, max_new_tokens=32),
                  progress=False)
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="True", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE="2",
                   OMPI_COMM_WORLD_LOCAL_RANK=str(rank))
        procs.append(subprocess.Popen([sys.executable, "-m", "vidsieve.eval", *common, "--out", str(out), "--no-progress"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(100) == 0, p.stderr.read().decode()[-3000:] if p.stderr else ""
    v0 = {json.loads(x)["video_id"] for x in (out / "rows.0.jsonl").read_text().splitlines()}
    v1 = {json.loads(x)["video_id"] for x in (out / "rows.1.jsonl").read_text().splitlines()}
    assert v0 and v1 and not v0 & v1
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert _stable(_rows(out)) == _stable(_rows(ref))
