"""The resumable, shardable benchmark loop.

Files in the output folder ``OUT``:

``rows.{rank}.jsonl``  one JSON line per finished question, appended with a single
                       ``write`` + ``fsync`` (a killed run loses at most the question in
                       flight; a torn last line is cut off on resume).
``results.jsonl``      all rows merged, in annotation order (written at the end).
``metrics.json``       :func:`vidsieve.eval.metrics.compute_metrics` of the merged rows.
``run.json``           the run's configuration, versions, machine, commit and summary.
``report.html`` / ``report.png``  a small report.

Resuming: run the same command again. Rows already in any ``rows.*.jsonl`` are skipped, so
a resumed run (even with another process count) never repeats or loses a question. A run
whose settings differ from the ``run.json`` in ``OUT`` is refused.

Sharding: under ``torchrun`` / ``accelerate launch --multi_gpu`` (``RANK``/``WORLD_SIZE``)
or mpirun (``OMPI_COMM_WORLD_*``, ``PMI_*``, ...) each process takes every
``WORLD_SIZE``-th *video* (so per-video reuse stays within a process), writes its own rows
file, and rank 0 merges once all ranks are past a (gloo) barrier. On a machine without GPUs,
``CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes N`` and ``torchrun
--nproc_per_node N`` both shard; ``accelerate launch --cpu --num_processes N`` without
``--mpirun_hostfile`` starts a single process and is refused with that advice.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidsieve.errors import ParameterError, VideoError, VidsieveError

from .answerers import Answer, Answerer, AnswerRequest
from .parsers import check_parser, parse_answer
from .prompts import VIDEOMME_NO_SUBTITLES, longvideobench_prompt, videomme_prompt
from .questions import Question
from .subtitles import (
    Line,
    lines_at,
    lmms_uniform_block,
    lmms_uniform_lines,
    load_subtitles,
    subtitle_text,
)

#: settings that change results: a resumed run must match them.
PROTOCOL_KEYS = (
    "benchmark", "model", "frames", "tokens", "budget_frames", "budget_tokens", "subtitles",
    "subtitle_rule", "subtitle_frames", "uniform_rule", "uniform_over", "parser", "prompt", "max_new_tokens",
    "seed", "dtype", "attn", "kv_reuse",
)


@dataclass
class RunConfig:
    """Everything a run is asked to do (recorded in ``run.json``)."""

    benchmark: str
    data: str
    model: str
    out: str
    frames: str = "uniform"
    tokens: str | None = None
    budget_frames: int = 32
    budget_tokens: int | None = None
    subtitles: bool = False
    subtitle_rule: str = "selected"
    subtitle_frames: int = 32
    uniform_rule: str = "linspace"
    uniform_over: str = "all"
    parser: str = "mcq"
    prompt: str = "lmms-eval"
    max_new_tokens: int = 16
    limit: int | None = None
    seed: int = 0
    batch_size: int = 1
    dtype: str = "auto"
    device: str = "auto"
    attn: str = "auto"
    reuse: bool = True
    kv_reuse: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def protocol(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in PROTOCOL_KEYS}


def check_selectors(cfg: RunConfig) -> None:
    """Raise a clear error for an unknown ``frames``/``tokens`` name or a bad parameter.

    Builds both selectors (cheap: ``__init__`` only validates) with the run's
    ``selector_params`` / ``token_params``, so every model kind, the fake answerer included
    (which ignores them), rejects what a real model would reject, before any model is loaded.
    Raises :class:`~vidsieve.errors.UnknownNameError` (``"Unknown frame selector 'x'.
    Available: ..."``) or :class:`~vidsieve.errors.ParameterError`.
    """
    from vidsieve.registry import create_selector, create_token_selector

    frames = cfg.frames
    if frames == "uniform" and cfg.uniform_rule == "centered":
        frames = "uniform-centered"  # as load_answerer resolves it
    create_selector(frames, **(cfg.extra.get("selector_params") or {}))
    create_token_selector(cfg.tokens or "none", **(cfg.extra.get("token_params") or {}))


# --------------------------------------------------------------------------------------------
# Row files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (never half-written).

    On any failure (a full disk) the temporary file is removed and ``path`` keeps its old
    content.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class RowWriter:
    """Appends rows to one JSONL file, one ``write`` + ``fsync`` per row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        repair_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_dir(path.parent)

    def append(self, row: dict[str, Any]) -> None:
        data = (json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def repair_tail(path: Path) -> None:
    """Cut a torn (newline-less) last line off ``path``, left by a killed writer."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Complete rows of one file (a torn last line or a corrupt line is skipped).

    The file is read as bytes and each line decoded on its own: a kill can cut the last row
    inside a multi-byte UTF-8 character, and a line that is not valid UTF-8 (or not JSON) is
    skipped like any other torn or corrupt line instead of failing the whole read.
    """
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
                continue
            if isinstance(row, dict) and "id" in row:
                yield row


def read_rows(out: Path) -> dict[str, dict[str, Any]]:
    """Every finished row under ``out`` keyed by question id. The first row of an id wins,
    except that an answered row replaces an error row (written by ``--retry-errors``)."""
    rows: dict[str, dict[str, Any]] = {}
    for p in sorted(out.glob("rows.*.jsonl")):
        for row in iter_rows(p):
            key = str(row["id"])
            old = rows.get(key)
            if old is None or (old.get("error") and not row.get("error")):
                rows[key] = row
    return rows


# --------------------------------------------------------------------------------------------
# Prompts per question


def _query_text(q: Question) -> str:
    if q.benchmark == "videomme":
        return q.question + "\n" + "\n".join(q.options)
    return q.question + "\n" + "\n".join(f"{ltr}. {o}" for ltr, o in zip(q.letters, q.options))


class PromptBuilder:
    """Builds the prompt of a question once its shown frames are known (subtitles aligned)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self._subs: dict[tuple[str, float], list[Line]] = {}

    def subtitles_for(self, q: Question, timestamps: Sequence[float], video_frames: int, fps: float) -> str | None:
        """The prompt's subtitle block, or None when subtitles are off (module
        :mod:`~vidsieve.eval.subtitles` describes both rules)."""
        if not self.cfg.subtitles:
            return None
        if q.subtitle is None:
            return VIDEOMME_NO_SUBTITLES
        n = self.cfg.subtitle_frames
        if self.cfg.subtitle_rule == "lmms-uniform" and q.subtitle.suffix.lower() == ".srt":
            return lmms_uniform_block(q.subtitle, total_frames=video_frames, fps=fps, n=n)
        key = (str(q.subtitle), q.subtitle_offset)
        if key not in self._subs:
            self._subs[key] = load_subtitles(q.subtitle, offset=q.subtitle_offset)
        lines = self._subs[key]
        if self.cfg.subtitle_rule == "lmms-uniform":
            return subtitle_text(lmms_uniform_lines(lines, total_frames=video_frames, fps=fps, n=n))
        return subtitle_text(lines_at(lines, timestamps)) or VIDEOMME_NO_SUBTITLES

    def build(self, q: Question, video_frames: int, fps: float) -> Callable[[Any], str]:
        def make(timestamps: Any) -> str:
            subs = self.subtitles_for(q, list(timestamps), video_frames, fps)
            if q.benchmark == "videomme":
                return videomme_prompt(q.question, q.options, subtitles=subs, variant=self.cfg.prompt)
            return longvideobench_prompt(q.question, q.options, subtitles=subs, variant=self.cfg.prompt)

        return make


# --------------------------------------------------------------------------------------------
# The loop


#: (rank, world size) variables per launcher, in the order accelerate reads them: torchrun /
#: ``accelerate launch --multi_gpu``; Open MPI, MVAPICH and Intel MPI / MPICH (the
#: ``mpirun`` that ``accelerate launch --cpu --mpirun_hostfile ...`` starts).
_LAUNCHER_VARS = (
    ("RANK", "WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
)

CPU_LAUNCH_HELP = (
    "accelerate launch --cpu started a single process: accelerate starts several CPU processes "
    "only through mpirun (--mpirun_hostfile). To shard on CPU run "
    "`CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes N -m vidsieve.eval ...` "
    "or `torchrun --nproc_per_node N -m vidsieve.eval ...`, or drop --num_processes for one process."
)


def dist_info() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (:data:`_LAUNCHER_VARS`).

    Refuses (:data:`CPU_LAUNCH_HELP`) ``accelerate launch --cpu --num_processes N`` without
    mpirun: accelerate then starts one process (it sets ``MASTER_ADDR`` for N > 1 but no rank),
    which would silently run everything unsharded.
    """
    rank, world = 0, 1
    for rank_var, world_var in _LAUNCHER_VARS:
        if os.environ.get(world_var):
            try:
                world = int(os.environ[world_var])
                rank = int(os.environ.get(rank_var, "0") or 0)
            except ValueError:
                raise ParameterError(
                    f"Bad launcher environment: {rank_var}={os.environ.get(rank_var)!r}, "
                    f"{world_var}={os.environ[world_var]!r}."
                ) from None
            break
    if world < 1 or not 0 <= rank < world:
        raise ParameterError(f"Bad launcher environment: RANK={rank}, WORLD_SIZE={world}.")
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes")
    if world == 1 and use_cpu and os.environ.get("MASTER_ADDR"):
        raise ParameterError(CPU_LAUNCH_HELP)
    return rank, world


def _barrier(rank: int, world: int) -> None:
    if world <= 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        from datetime import timedelta

        # mpirun names ranks in its own variables; torch's env:// rendezvous reads these
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        # gloo (CPU) is enough for a barrier; the long timeout covers unequal shards
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(hours=48))
    dist.barrier()


def shard_videos(questions: Sequence[Question], rank: int, world: int) -> list[list[Question]]:
    """This rank's questions grouped by video (videos in first-appearance order)."""
    by_video: dict[str, list[Question]] = {}
    for q in questions:
        by_video.setdefault(str(q.video), []).append(q)
    return [qs for i, qs in enumerate(by_video.values()) if i % world == rank]


def _error_row(q: Question, err: BaseException, stage: str, rank: int) -> dict[str, Any]:
    return {
        **_base_row(q, rank),
        "error": f"{type(err).__name__}: {err}", "error_stage": stage,
        "parsed": "", "unparsed": True, "correct": False,
        "traceback": None if isinstance(err, VidsieveError) else traceback.format_exc(limit=6),
    }


def _base_row(q: Question, rank: int) -> dict[str, Any]:
    return {
        "id": q.qid, "benchmark": q.benchmark, "video_id": q.video_id, "video": str(q.video),
        "question": q.question, "options": list(q.options), "letters": list(q.letters),
        "answer": q.answer, "groups": dict(q.groups), "rank": rank,
    }


def _answer_row(q: Question, cfg: RunConfig, ans: Answer, rank: int) -> dict[str, Any]:
    parsed = parse_answer(ans.text, parser=cfg.parser, benchmark=q.benchmark)
    return {
        **_base_row(q, rank),
        "prompt": ans.prompt, "output": ans.text, "parsed": parsed, "unparsed": parsed == "",
        "correct": parsed == q.answer, "error": None,
        "frames": ans.frames, "timestamps": ans.timestamps, "num_frames": len(ans.frames),
        "visual_tokens": ans.visual_tokens, "input_tokens": ans.input_tokens,
        "output_tokens": ans.output_tokens, "timings": ans.timings, "reused": ans.reused,
        "extras": ans.extras,
    }


def run_questions(
    questions: Sequence[Question],
    answerer: Answerer,
    cfg: RunConfig,
    *,
    progress: bool = True,
    retry_errors: bool = False,
) -> dict[str, Any] | None:
    """Answer every question not yet in ``cfg.out``; returns the metrics on rank 0.

    A missing or corrupt video (or any failure while answering one question) becomes an
    error row (counted wrong) and the run goes on. ``retry_errors`` answers the error rows'
    questions again (e.g. after a missing video was added); a new answer replaces the error.
    """
    from tqdm import tqdm

    from .metrics import compute_metrics
    from .report import write_run_report

    check_parser(cfg.parser)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = dist_info()
    qs = list(questions)[: cfg.limit] if cfg.limit else list(questions)
    if rank == 0:
        start_run_record(out, cfg, answerer, len(qs), world)
    _barrier(rank, world)
    done = {k for k, r in read_rows(out).items() if not (retry_errors and r.get("error"))}
    groups = shard_videos([q for q in qs if q.qid not in done], rank, world)
    writer = RowWriter(out / f"rows.{rank}.jsonl")
    builder = PromptBuilder(cfg)
    todo = sum(len(g) for g in groups)
    bar = tqdm(total=todo, desc=f"{cfg.benchmark} [rank {rank}]", disable=not progress, unit="q")
    try:
        for vqs in groups:
            try:
                session = answerer.open(vqs[0].video)
            except (VideoError, OSError) as e:
                for q in vqs:
                    writer.append(_error_row(q, e, "open", rank))
                    bar.update(1)
                continue
            try:
                meta = getattr(session, "meta", None)
                nframes = int(getattr(meta, "num_frames", 0))
                fps = float(getattr(meta, "effective_fps", 0.0))  # the container's, or 25 when it has none
                for q in vqs:
                    req = AnswerRequest(
                        question=q, query=_query_text(q), build_prompt=builder.build(q, nframes, fps),
                        max_new_tokens=cfg.max_new_tokens,
                    )
                    try:
                        row = _answer_row(q, cfg, session.answer(req), rank)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as e:  # one bad question must not end a 10-hour run
                        row = _error_row(q, e, "answer", rank)
                    writer.append(row)
                    bar.update(1)
            finally:
                session.close()
    finally:
        bar.close()
        writer.close()
    _barrier(rank, world)
    if rank != 0:
        return None
    rows = read_rows(out)
    ordered = [rows[q.qid] for q in qs if q.qid in rows]
    missing = [q.qid for q in qs if q.qid not in rows]
    if missing:  # pragma: no cover - only if a rank died between its rows and the barrier
        raise VidsieveError(f"{len(missing)} question(s) have no row (e.g. {missing[:3]}); run again to resume.")
    atomic_write(out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in ordered))
    metrics = compute_metrics(ordered, benchmark=cfg.benchmark, seed=cfg.seed)
    metrics["parser"] = cfg.parser
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    finish_run_record(out, metrics, ordered, world)
    write_run_report(out)
    return metrics


# --------------------------------------------------------------------------------------------
# run.json


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from vidsieve.versions import git_commit, machine

    names = ("vidsieve", "torch", "transformers", "accelerate", "numpy", "decord", "pysubs2", "pandas", "lmms-eval")
    vers: dict[str, str] = {}
    for n in names:
        try:
            vers[n] = version(n)
        except PackageNotFoundError:
            vers[n] = "not installed"
    if "torch" in sys.modules:  # a model run: machine() names the GPU (it imports torch)
        mach = machine()
    else:  # the fake answerer: do not pay torch's import just to record "no GPU used"
        mach = {"python": platform.python_version(), "platform": platform.platform(), "cuda": "not used"}
    return {"versions": vers, "machine": mach, "commit": git_commit()}


def start_run_record(out: Path, cfg: RunConfig, answerer: Answerer, n_questions: int, world: int) -> None:
    path = out / "run.json"
    desc = answerer.describe()
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        old_proto = old.get("protocol", {})
        diff = {k: (old_proto.get(k), v) for k, v in cfg.protocol().items() if old_proto.get(k) != v}
        if diff:
            details = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise VidsieveError(
                f"{out} holds a run with other settings ({details}). Use a new --out folder to "
                "start a different run."
            )
        rec = old
        rec.setdefault("resumed_at", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    else:
        rec = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "protocol": cfg.protocol()}
    rec.update(
        {
            "status": "running", "config": asdict(cfg), "answerer": desc, "questions": n_questions,
            "world_size": world, **_versions(),
        }
    )
    atomic_write(path, json.dumps(rec, indent=2, sort_keys=True, default=str))


def finish_run_record(out: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], world: int) -> None:
    path = out / "run.json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["status"] = "finished"
    rec["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rec["summary"] = {
        k: metrics.get(k) for k in ("accuracy", "n", "errors", "unparsed", "timing", "fed", "peak_memory")
    }
    atomic_write(path, json.dumps(rec, indent=2, sort_keys=True, default=str))

