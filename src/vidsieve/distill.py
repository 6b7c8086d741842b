"""Distil a teacher's per-frame scores into a PEEK student.

Recipe (PEEK, arXiv 2605.31029): ListMLE (Plackett-Luce) on the teacher's ranking of each
segment's frames; AdamW (lr 2e-4, weight decay 0.03), cosine schedule, gradient clipping at
1.0, 25 epochs; augmentation: a temporal crop keeping >= 70 % of the segment, then dropping
5-25 % of the frames, then at most 32 frames per segment (a random sorted subset).

The teacher is any per-frame score: PEEK uses SigLIP2 caption-frame cosine, min-max
normalised per segment (:func:`teacher_scores`); any encoder's query/caption similarity, or
scores computed elsewhere, work the same. Training data is a list of :class:`Segment`.

Deviations/choices the paper leaves open: no warm-up; the per-list ListMLE loss is summed over
the list and averaged over the batch; one augmented view per segment per epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ParameterError
from .params import Constraint, Float, Int, Str, param_error, validate_fields
from .peek_model import PeekStudent, StudentConfig, init_student, save_student
from .relevance import l2_normalize, minmax

STATE_FILE = "trainer_state.pt"
HISTORY_FILE = "history.json"


@dataclass(frozen=True, eq=False)
class Segment:
    """One training list: student features ``[n, D]`` and teacher scores ``[n]`` (higher =
    more representative), frames in temporal order."""

    features: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        f, s = np.asarray(self.features), np.asarray(self.scores)
        if f.ndim != 2 or s.shape != (f.shape[0],) or f.shape[0] < 2:
            raise ParameterError(
                f"A Segment needs features [n, D] and scores [n] with n >= 2; got {f.shape} and {s.shape}."
            )
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(s))):
            raise ParameterError("Segment features/scores contain NaN or inf.")


_DISTILL_CONSTRAINTS: dict[str, list[Constraint]] = {
    "epochs": [Int(ge=1)],
    "batch_size": [Int(ge=1)],
    "max_frames": [Int(ge=2)],
    "seed": [Int(ge=0)],
    "lr": [Float(gt=0)],
    "weight_decay": [Float(ge=0)],
    "grad_clip": [Float(gt=0)],
    "min_crop": [Float(gt=0, le=1)],
    "drop_min": [Float(ge=0, lt=1)],
    "drop_max": [Float(ge=0, lt=1)],
    "device": [Str()],
}


@dataclass(frozen=True)
class DistillConfig:
    """Trainer hyper-parameters (defaults = PEEK's recipe; batch size is not stated there)."""

    epochs: int = 25
    lr: float = 2e-4
    weight_decay: float = 0.03
    batch_size: int = 16
    grad_clip: float = 1.0
    max_frames: int = 32
    min_crop: float = 0.7
    drop_min: float = 0.05
    drop_max: float = 0.25
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        validate_fields(self, _DISTILL_CONSTRAINTS)
        if self.drop_max < self.drop_min:
            raise param_error("DistillConfig", "drop_max", "a float >= drop_min and < 1", self.drop_max)


# --------------------------------------------------------------------------- teacher, metrics


def teacher_scores(frame_embeddings: np.ndarray, text_embedding: np.ndarray) -> np.ndarray:
    """PEEK's teacher target: cosine of each frame to a caption/query embedding, min-max
    normalised over the segment. ``[n, D'] x [D'] -> float64 [n]`` in ``[0, 1]``."""
    f = np.asarray(frame_embeddings, dtype=np.float64)
    q = np.asarray(text_embedding, dtype=np.float64).reshape(-1)
    if f.ndim != 2 or f.shape[1] != q.shape[0]:
        raise ParameterError(f"Teacher frame embeddings {f.shape} do not match the text embedding {q.shape}.")
    return minmax(l2_normalize(f) @ l2_normalize(q))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``; ties get average ranks), defined
    as 0 when either side is constant (where scipy gives NaN and a warning)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


# --------------------------------------------------------------------------- loss, augmentation


def listmle_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """ListMLE (Plackett-Luce negative log-likelihood of the teacher's ranking).

    logits, targets: ``[B, n]``; valid: bool ``[B, n]`` (False = padding) or None.
    For one list with the teacher's order ``pi`` (descending targets, ties kept in frame
    order): ``sum_i [ logsumexp(s[pi_i], ..., s[pi_m]) - s[pi_i] ]`` over its ``m`` valid
    frames. Returns the mean over the batch.
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ParameterError(f"logits and targets must both be [B, n]; got {tuple(logits.shape)}, {tuple(targets.shape)}.")
    if valid is None:
        valid = torch.ones_like(logits, dtype=torch.bool)
    neg = torch.finfo(logits.dtype).min / 4
    t = torch.where(valid, targets, torch.full_like(targets, -math.inf))
    order = torch.sort(t, dim=1, descending=True, stable=True).indices
    s = torch.gather(logits, 1, order)
    v = torch.gather(valid, 1, order)
    s = torch.where(v, s, torch.full_like(s, neg))  # padding sorted last, contributes exp(-big)=0
    tail = torch.flip(torch.logcumsumexp(torch.flip(s, [1]), dim=1), [1])
    terms = torch.where(v, tail - s, torch.zeros_like(s))
    return terms.sum(dim=1).mean()


def augment(seg: Segment, rng: np.random.Generator, cfg: DistillConfig) -> tuple[np.ndarray, np.ndarray]:
    """One augmented view of a segment: crop (>= min_crop), frame drop, <= max_frames."""
    n = seg.features.shape[0]
    c = int(rng.integers(max(2, math.ceil(cfg.min_crop * n)), n + 1)) if n > 2 else n
    start = int(rng.integers(0, n - c + 1))
    rows = np.arange(start, start + c)
    p = rng.uniform(cfg.drop_min, cfg.drop_max)
    keep = rows[rng.random(c) >= p]
    if keep.size < 2:
        keep = rows
    if keep.size > cfg.max_frames:
        keep = np.sort(rng.choice(keep, size=cfg.max_frames, replace=False))
    return seg.features[keep], seg.scores[keep]


#: rows whose largest |value| exceeds this are scaled down by a power of two before float32.
_SAFE_MAX = 2.0**20


def safe_student_input(features: np.ndarray) -> np.ndarray:
    """Frame features ``[T, D]`` as float32 the student can read without overflow.

    The student starts with a LayerNorm over each frame, whose float32 variance overflows
    (NaN logits) for finite features around 1e19 and above, and float32 itself ends at 3.4e38.
    A LayerNorm ignores a frame's scale, so each row with ``max |x| > 2**20`` is divided (in
    float64) by the power of two that brings it under ``2**20``; other rows are untouched, so
    ordinary features give bit-identical logits.
    """
    x = np.asarray(features)
    peak = np.max(np.abs(x), axis=-1, keepdims=True) if x.size else np.zeros(x.shape[:-1] + (1,))
    if not np.any(peak > _SAFE_MAX):
        return np.asarray(x, dtype=np.float32)
    x64 = x.astype(np.float64)
    exp = np.where(peak > _SAFE_MAX, np.ceil(np.log2(np.maximum(peak, 1.0) / _SAFE_MAX)), 0.0)
    return (x64 * np.exp2(-exp)).astype(np.float32)


def _pad(batch: Sequence[tuple[np.ndarray, np.ndarray]], device: str) -> tuple[torch.Tensor, ...]:
    n = max(x.shape[0] for x, _ in batch)
    d = batch[0][0].shape[1]
    x = np.zeros((len(batch), n, d), np.float32)
    y = np.zeros((len(batch), n), np.float32)
    m = np.zeros((len(batch), n), bool)
    for i, (f, s) in enumerate(batch):
        x[i, : f.shape[0]], y[i, : f.shape[0]], m[i, : f.shape[0]] = safe_student_input(f), s, True
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), torch.from_numpy(m).to(device)


# --------------------------------------------------------------------------- inference


@torch.inference_mode()
def student_scores(model: PeekStudent, features: np.ndarray, *, window: int | None = None) -> np.ndarray:
    """Logits of the student for frames ``[T, D]`` -> float64 ``[T]``.

    window: None = one pass over all ``T`` frames; otherwise the frames are split into
            ``ceil(T / window)`` near-equal consecutive chunks scored independently (as in
            training, where lists have <= 32 frames) and each chunk's logits are centred
            (ListMLE fixes logits only up to a shift per list).
    """
    model.eval()
    dev = next(model.parameters()).device
    x = torch.as_tensor(safe_student_input(features), device=dev)
    t = x.shape[0]
    if window is None or t <= window:
        return model(x[None])[0].double().cpu().numpy()
    n_chunks = math.ceil(t / window)
    bounds = (np.arange(n_chunks + 1) * t) // n_chunks
    lens = np.diff(bounds)
    width = int(lens.max())
    batch = torch.zeros(n_chunks, width, x.shape[1], device=dev)
    pad = torch.ones(n_chunks, width, dtype=torch.bool, device=dev)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        batch[i, : b - a] = x[a:b]
        pad[i, : b - a] = False
    logits = model(batch, pad_mask=pad).double()
    logits = logits.masked_fill(pad, 0.0)
    means = logits.sum(1, keepdim=True) / torch.as_tensor(lens, device=dev)[:, None]
    out = (logits - means)[~pad]
    return out.cpu().numpy()


def evaluate(model: PeekStudent, segments: Sequence[Segment]) -> float:
    """Mean per-segment Spearman correlation of student logits with teacher scores."""
    if not segments:
        return float("nan")
    vals = [spearman(student_scores(model, s.features), s.scores) for s in segments]
    return float(np.mean(vals))


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    model: PeekStudent
    history: list[dict[str, float]]


def train_student(
    segments: Sequence[Segment],
    *,
    config: DistillConfig | None = None,
    student: StudentConfig | None = None,
    val_segments: Sequence[Segment] = (),
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Distil ``segments``' teacher scores into a student (see module docstring).

    student: architecture; its ``input_dim`` must equal the segments' feature width (default:
             PEEK's dims with ``input_dim`` taken from the data).
    out_dir: if given, the checkpoint (``model.safetensors`` + ``config.json``), the trainer
             state and ``history.json`` are written there after every epoch; ``resume=True``
             continues from the trainer state found there.
    Returns the trained model (eval mode) and per-epoch history (loss, val Spearman).
    """
    cfg = config or DistillConfig()
    if not segments:
        raise ParameterError("train_student needs at least one Segment.")
    dim = segments[0].features.shape[1]
    if any(s.features.shape[1] != dim for s in segments) or any(s.features.shape[1] != dim for s in val_segments):
        raise ParameterError("All segments must have the same feature width.")
    scfg = student or StudentConfig(input_dim=dim)
    if scfg.input_dim != dim:
        raise ParameterError(f"The student reads {scfg.input_dim}-d features but the segments have {dim}.")
    model = init_student(scfg, seed=cfg.seed).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(segments) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    rng = np.random.default_rng(cfg.seed)
    history: list[dict[str, float]] = []
    first_epoch = 0
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is not None and (out / STATE_FILE).is_file():
        state = torch.load(out / STATE_FILE, map_location=cfg.device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = json.loads(state["rng"])
        first_epoch = int(state["epoch"])
        if (out / HISTORY_FILE).is_file():
            history = json.loads((out / HISTORY_FILE).read_text())["epochs"]
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=first_epoch * steps_per_epoch, desc="distill", unit="step", disable=not progress)
    try:
        for epoch in range(first_epoch, cfg.epochs):
            model.train()
            losses = []
            perm = rng.permutation(len(segments))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout; per epoch so resume is exact
                for b in range(0, len(perm), cfg.batch_size):
                    views = [augment(segments[i], rng, cfg) for i in perm[b : b + cfg.batch_size]]
                    x, y, m = _pad(views, cfg.device)
                    loss = listmle_loss(model(x, pad_mask=~m), y, m)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
                    bar.update(1)
            rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": float(sched.get_last_lr()[0])}
            if val_segments:
                rec["val_spearman"] = evaluate(model, val_segments)
            history.append(rec)
            bar.set_postfix({k: round(v, 4) for k, v in rec.items() if k != "epoch"})
            if out is not None:
                _save_state(out, model, scfg, cfg, opt, sched, rng, epoch + 1, history)
            if on_epoch is not None:
                on_epoch(epoch + 1, rec)
    finally:
        bar.close()
    return TrainResult(model=model.eval(), history=history)


def _save_state(
    out: Path, model: PeekStudent, scfg: StudentConfig, cfg: DistillConfig, opt: torch.optim.Optimizer,
    sched: Any, rng: np.random.Generator, epoch: int, history: list[dict[str, float]],
) -> None:
    info = {**scfg.info, "distill": asdict(cfg), "epochs_done": epoch, "loss": history[-1]["loss"]}
    if "val_spearman" in history[-1]:
        info["val_spearman"] = history[-1]["val_spearman"]
    final_cfg = StudentConfig(**{**asdict(scfg), "trained": True, "info": info})
    save_student(model, out, final_cfg)
    torch.save(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
         "rng": json.dumps(rng.bit_generator.state), "epoch": epoch},
        out / STATE_FILE,
    )
    (out / HISTORY_FILE).write_text(json.dumps({"epochs": history}, indent=2))


# --------------------------------------------------------------------------- synthetic task


def synthetic_segments(
    n: int, *, length: int = 40, dim: int = 32, seed: int = 0, task_seed: int = 1234
) -> list[Segment]:
    """A learnable distillation task: ``n`` segments of temporally smooth random features whose
    teacher score is a fixed nonlinear function of each frame's features
    (``relu(x W1) . w2``, ``W1`` ``[dim, 16]`` drawn from ``task_seed``), min-max normalised
    per segment. Different ``seed`` = new segments of the same task."""
    task = np.random.default_rng(task_seed)
    w1 = task.normal(size=(dim, 16)) / math.sqrt(dim)
    w2 = task.normal(size=16)
    rng = np.random.default_rng(seed)
    segs = []
    for _ in range(n):
        base = rng.normal(size=(length, dim))
        x = base.copy()
        for t in range(1, length):  # AR(1): neighbouring frames look alike, as in video
            x[t] = 0.6 * x[t - 1] + 0.8 * base[t]
        s = minmax(np.maximum(x @ w1, 0.0) @ w2)
        segs.append(Segment(features=x.astype(np.float32), scores=s))
    return segs


# --------------------------------------------------------------------------- data assembly


@dataclass(frozen=True)
class Caption:
    """A caption/query and the time span (seconds) of the video it describes (None = all)."""

    text: str
    start: float | None = None
    end: float | None = None


def segments_from_scores(features: np.ndarray, scores: np.ndarray, segment_frames: int = 64) -> list[Segment]:
    """Split a video's student features ``[T, D]`` and per-frame teacher scores ``[T]`` into
    consecutive lists of about ``segment_frames`` frames, scores min-max normalised per list."""
    f, s = np.asarray(features, np.float32), np.asarray(scores, np.float64).reshape(-1)
    if f.ndim != 2 or s.shape[0] != f.shape[0]:
        raise ParameterError(f"features [T, D] and scores [T] do not match: {f.shape} vs {s.shape}.")
    n = max(1, round(f.shape[0] / segment_frames))
    bounds = (np.arange(n + 1) * f.shape[0]) // n
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a >= 2:
            out.append(Segment(f[a:b], minmax(s[a:b])))
    return out


def segments_from_captions(
    features: np.ndarray,
    teacher_embeddings: np.ndarray,
    timestamps: np.ndarray,
    captions: Sequence[Caption],
    embed_text: Callable[[str], np.ndarray | None],
) -> list[Segment]:
    """One list per caption: the frames inside its time span, scored by the teacher (cosine of
    teacher frame embeddings ``[T, D']`` to the embedded caption, min-max per segment)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    out = []
    for c in captions:
        lo = -np.inf if c.start is None else c.start
        hi = np.inf if c.end is None else c.end
        rows = np.flatnonzero((ts >= lo) & (ts <= hi))
        if rows.size < 2:
            continue
        q = embed_text(c.text)
        if q is None:
            raise ParameterError("The teacher encoder cannot embed text; choose one with a text side (e.g. a CLIP/SigLIP encoder).")
        out.append(Segment(np.asarray(features, np.float32)[rows], teacher_scores(teacher_embeddings[rows], q)))
    return out
