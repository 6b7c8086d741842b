"""``vidsieve distill``: train a PEEK student from a teacher's per-frame scores.

Inputs (``INPUT`` is a directory, searched recursively, or files):

* ``*.npz`` feature files (the feature-cache format: ``embeddings`` ``[T, D]``,
  ``timestamps`` ``[T]``), with the teacher given by one of
  - a ``scores`` array ``[T]`` in the file (any teacher, computed elsewhere), split into
    lists of ``--segment-frames``;
  - ``--captions`` + ``--teacher-encoder``: the caption texts are embedded by the teacher
    encoder and compared with the file's ``teacher_embeddings`` ``[T, D']`` (or, without
    them, with ``embeddings`` themselves: teacher and student then share one space).
* videos (``.mp4 .mkv .avi .mov .webm``): student features from ``--encoder``, teacher
  frame embeddings from ``--teacher-encoder`` (same candidate frames), captions from
  ``--captions``.
* ``--synthetic N``: no input; a demo task whose teacher is a fixed nonlinear function of
  the features (shows the trainer learning; held-out Spearman printed).

``--captions`` is JSON: ``{"<file stem>": ["caption", ...] | [{"text": ..., "start": s,
"end": e}, ...]}`` (times in seconds; no span = the whole video).

Output: ``OUT/model.safetensors`` + ``OUT/config.json`` (load with
``create_selector("peek", checkpoint=OUT)``), ``history.json`` and ``trainer_state.pt``
(``--resume`` continues an interrupted run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError

VIDEO_EXT = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v"}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "distill", help="train a PEEK student ranker from a teacher's frame scores",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", nargs="*", help="directory or files: .npz features and/or videos")
    p.add_argument("-o", "--out", required=True, help="checkpoint directory to write")
    p.add_argument("--synthetic", type=int, default=None, metavar="N", help="train on N synthetic segments (demo)")
    p.add_argument("--captions", default=None, help="JSON file of captions/queries per file stem")
    p.add_argument("--encoder", default="pixel", help="student feature encoder for videos (default pixel)")
    p.add_argument("--encoder-model", default=None, help="model id/path for --encoder hf")
    p.add_argument("--teacher-encoder", default=None, help="encoder giving teacher frame/text embeddings")
    p.add_argument("--teacher-model", default=None, help="model id/path for --teacher-encoder hf")
    p.add_argument("--fps", type=float, default=1.0, help="candidate frames per second for videos (default 1)")
    p.add_argument("--segment-frames", type=int, default=64, help="list length for per-frame scores (default 64)")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="segments held out for Spearman (default 0.1)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/trainer_state.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _encoder(name: str | None, model: str | None) -> Any:
    if name is None:
        return None
    from ..registry import create_encoder

    return create_encoder(name, **({"model": model} if model else {}))


def _captions(path: str | None) -> dict[str, list[Any]]:
    from ..distill import Caption

    if path is None:
        return {}
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ParameterError(f"Cannot read captions file {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ParameterError(f"{path} must be a JSON object mapping file stems to caption lists.")
    out: dict[str, list[Any]] = {}
    for stem, items in raw.items():
        caps = []
        for it in items if isinstance(items, list) else [items]:
            if isinstance(it, str):
                caps.append(Caption(it))
            elif isinstance(it, dict) and isinstance(it.get("text"), str):
                caps.append(Caption(it["text"], it.get("start"), it.get("end")))
            else:
                raise ParameterError(f"{path}: captions of {stem!r} must be strings or {{'text', 'start', 'end'}}.")
        out[str(stem)] = caps
    return out


def _files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_EXT | {".npz"})
        elif p.is_file():
            files.append(p)
        else:
            raise ParameterError(f"Input not found: {p}")
    if not files:
        raise ParameterError("No .npz feature files or videos found in the input.")
    return files


def _load_npz(path: Path) -> dict[str, Any]:
    """The arrays of one feature file, checked: ``embeddings`` float ``[T, D]``, ``timestamps``
    ``[T]`` (default ``0..T-1``), optional ``scores`` ``[T]``, ``teacher_embeddings`` ``[T, D']``
    and ``meta`` (JSON). Raises one-line :class:`ParameterError` for a truncated or corrupt file,
    a missing ``embeddings`` array, non-numeric arrays or mismatched lengths."""
    import zipfile

    out: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if "embeddings" not in z.files:
                raise ParameterError(
                    f"{path} has no 'embeddings' array (it has {', '.join(z.files) or 'none'}); a feature "
                    "file needs embeddings [T, D] (and scores [T] or captions)."
                )
            for key in ("embeddings", "timestamps", "scores", "teacher_embeddings", "meta"):
                if key in z.files:
                    out[key] = z[key]
    except ParameterError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        # a cut-short download or write gives BadZipFile / EOFError; object arrays ValueError
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ParameterError(f"{path} is not a readable .npz feature file: truncated or corrupt ({msg}).") from None
    emb = out["embeddings"]
    t = emb.shape[0] if emb.ndim >= 1 else 0
    out.setdefault("timestamps", np.arange(t, dtype=np.float64))
    for key, ndim in (("embeddings", 2), ("timestamps", 1), ("scores", 1), ("teacher_embeddings", 2)):
        if key not in out:
            continue
        a = out[key]
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)) or a.ndim != ndim:
            raise ParameterError(
                f"{path}: '{key}' must be a numeric {ndim}-d array; got {a.dtype} of shape {a.shape}."
            )
        if a.shape[0] != t:
            raise ParameterError(f"{path}: '{key}' has {a.shape[0]} rows and 'embeddings' {t}: they do not match.")
    if "meta" in out:
        try:
            meta = json.loads(str(out["meta"]))
        except ValueError:
            meta = {}
        out["meta"] = meta if isinstance(meta, dict) else {}
    return out


def _split(segments: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(training, held-out) segments: ``round(val_fraction * n)`` held out at random (none
    when there is a single segment). Refuses a fraction that leaves nothing to train on."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(segments))
    n_val = int(round(val_fraction * len(segments))) if len(segments) > 1 else 0
    if n_val >= len(segments):
        raise ParameterError(
            f"--val-fraction {val_fraction} holds out {n_val} of {len(segments)} segments and leaves no "
            f"training segment; use a fraction below {(len(segments) - 0.5) / len(segments):.3f} "
            "(or 0 for no held-out set), or give more data."
        )
    return [segments[i] for i in order[n_val:]], [segments[i] for i in order[:n_val]]


def collect_segments(args: argparse.Namespace) -> tuple[list[Any], str]:
    """Training segments and the student encoder's name from the command-line inputs."""
    from ..distill import segments_from_captions, segments_from_scores

    caps = _captions(args.captions)
    teacher = _encoder(args.teacher_encoder, args.teacher_model)
    student_enc = None
    segments: list[Any] = []
    encoder_name = "unknown"
    for f in _files(args.input):
        if f.suffix.lower() == ".npz":
            z = _load_npz(f)
            emb, ts = z["embeddings"], z["timestamps"]
            if "meta" in z:
                encoder_name = str(z["meta"].get("encoder", encoder_name))
            if "scores" in z and f.stem not in caps:
                try:
                    segments += segments_from_scores(emb, z["scores"], args.segment_frames)
                except ParameterError as e:
                    raise ParameterError(f"{f}: {e}") from None
                continue
            temb = z.get("teacher_embeddings", emb)
        else:
            from ..features import extract_features

            if teacher is None:
                raise ParameterError(f"{f.name}: videos need --teacher-encoder (and --captions).")
            student_enc = student_enc or _encoder(args.encoder, args.encoder_model)
            feats = extract_features(f, student_enc, fps=args.fps, progress=not args.quiet)
            tfeats = extract_features(f, teacher, fps=args.fps, progress=not args.quiet)
            emb, temb, ts, encoder_name = feats.embeddings, tfeats.embeddings, feats.timestamps, feats.encoder
        if f.stem not in caps:
            raise ParameterError(f"{f.name}: no teacher scores in the file and no captions for {f.stem!r} in --captions.")
        if teacher is None:
            raise ParameterError(f"{f.name}: captions need --teacher-encoder to embed them.")
        segments += segments_from_captions(emb, temb, ts, caps[f.stem], teacher.embed_text)
    if not segments:
        raise ParameterError("No training segment with at least 2 frames was built from the input.")
    return segments, encoder_name


def run(args: argparse.Namespace) -> int:
    from ..distill import DistillConfig, evaluate, synthetic_segments, train_student
    from ..peek_model import StudentConfig, init_student

    if not 0 <= args.val_fraction < 1:
        raise ParameterError(f"The '--val-fraction' option must be a float >= 0 and < 1. Got {args.val_fraction!r} instead.")
    if args.synthetic is not None:
        if args.synthetic < 2:
            raise ParameterError(f"The '--synthetic' option must be an int >= 2. Got {args.synthetic!r} instead.")
        segments, encoder_name = synthetic_segments(args.synthetic, seed=args.seed), "synthetic"
    else:
        if not args.input:
            raise ParameterError("Give INPUT (feature files or videos) or --synthetic N.")
        segments, encoder_name = collect_segments(args)
    train, val = _split(segments, args.val_fraction, args.seed)
    cfg = DistillConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device)
    dim = int(train[0].features.shape[1])
    student = StudentConfig(input_dim=dim, encoder=encoder_name, info={"segments": len(train), "val_segments": len(val)})
    base = evaluate(init_student(student, seed=args.seed), val) if val else float("nan")
    print(f"{len(train)} training / {len(val)} held-out segments, {dim}-d features ({encoder_name})")
    result = train_student(
        train, config=cfg, student=student, val_segments=val, out_dir=args.out, resume=args.resume,
        progress=not args.quiet,
    )
    last = result.history[-1] if result.history else {}
    if val:
        print(f"held-out Spearman: untrained {base:.3f} -> trained {last.get('val_spearman', float('nan')):.3f}")
    print(f"checkpoint: {Path(args.out).resolve()}  (use: create_selector('peek', checkpoint=...))")
    return 0
