"""PEEK: a distilled student ranks frames, stratified argmax picks them.

Source: PEEK (arXiv 2605.31029, momentslab/peek). A small Transformer student reads frozen
frame features and was distilled from a teacher's caption-frame similarity (ListMLE); at
inference it is query-free: its logits are the frame scores, and stratified argmax (best
frame in each of k equal time bins) picks the frames. Architecture:
:mod:`vidsieve.peek_model`; trainer: :mod:`vidsieve.distill` / ``vidsieve distill``.

vidsieve ships **no trained weights** (the authors' are CC-BY-NC-SA). Parameters:

checkpoint: directory written by ``vidsieve distill`` (``model.safetensors`` +
            ``config.json``). Its ``input_dim`` must match the features' width.
            **None (the default) uses an UNTRAINED student** initialised deterministically
            from ``seed`` (PyTorch's default initialisation) for the features' width: the
            ranking is then an arbitrary but reproducible function of the features, not a
            learned one. Every selection says which it was: ``extras["trained"]`` is False and
            ``extras["warning"]`` explains. It exists so that ``peek`` is constructible and
            testable by name; do not report results with it.
window:     frames scored together (PEEK trains on lists of <= 32 frames); longer videos are
            split into ``ceil(T / window)`` near-equal chunks whose logits are centred per
            chunk (ListMLE fixes logits only up to a shift). None = one pass over all frames.
seed:       initialisation seed of the untrained student (ignored with a checkpoint).
device:     torch device; None = CUDA when available, else CPU.

Deviation: the paper scores caption segments; vidsieve scores the candidate frames of the
whole video in windows (above) and picks with stratified argmax over all of them.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..devices import resolve_device
from ..errors import ParameterError
from ..params import Choice, Int, NoneValue, Str
from ..peek_model import PeekStudent, StudentConfig, init_student, load_student
from ..registry import register_selector
from ..relevance import stratified_argmax
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput

UNTRAINED_WARNING = (
    "untrained PEEK student (no checkpoint): a deterministic random ranking, not a learned one; "
    "train one with `vidsieve distill` and pass checkpoint=..."
)


@functools.lru_cache(maxsize=4)
def _cached_checkpoint(path: str, mtime_ns: int, device: str) -> PeekStudent:
    return load_student(path, device=device)


@functools.lru_cache(maxsize=4)
def _cached_untrained(input_dim: int, seed: int, device: str) -> PeekStudent:
    return init_student(StudentConfig(input_dim=input_dim), seed=seed).to(device)


@register_selector("peek", "PEEK: a distilled student's frame logits + stratified argmax (query-free).")
class PeekSelector(FrameSelector):
    """PEEK student ranking + stratified argmax (see module docstring; note the untrained
    default)."""

    uses_query = False
    _parameter_constraints = {
        "checkpoint": [NoneValue(), Str()],
        "window": [NoneValue(), Int(ge=2)],
        "seed": [Int(ge=0)],
        "device": [NoneValue(), Choice("cpu", "cuda")],
    }

    def __init__(
        self, *, checkpoint: str | None = None, window: int | None = 32, seed: int = 0, device: str | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.window = window
        self.seed = seed
        self.device = device
        self._validate_params()

    def student(self, input_dim: int) -> PeekStudent:
        """The student that scores ``input_dim``-wide features (loaded once, then cached)."""
        dev = str(resolve_device(self.device, owner="PeekSelector"))
        if self.checkpoint is None:
            return _cached_untrained(int(input_dim), int(self.seed), dev)
        p = Path(self.checkpoint).expanduser()
        weights = p / "model.safetensors"
        if not weights.is_file():
            raise ParameterError(
                f"PEEK checkpoint {p} not found (needs model.safetensors + config.json); "
                "make one with `vidsieve distill`."
            )
        model = _cached_checkpoint(str(p.resolve()), weights.stat().st_mtime_ns, dev)
        if model.config.input_dim != input_dim:
            raise ParameterError(
                f"The PEEK checkpoint {p} reads {model.config.input_dim}-d features (encoder "
                f"{model.config.encoder!r}) but these features are {input_dim}-d; extract them "
                "with the checkpoint's encoder."
            )
        return model

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        from ..distill import student_scores

        model = self.student(features.embeddings.shape[1])
        scores = student_scores(model, features.embeddings, window=self.window)
        extras: dict[str, object] = {"trained": bool(model.config.trained), "encoder": model.config.encoder}
        if not model.config.trained:
            extras["warning"] = UNTRAINED_WARNING
        elif model.config.encoder not in ("unknown", features.encoder) and features.encoder != "unknown":
            extras["encoder_mismatch"] = (
                f"checkpoint trained on {model.config.encoder!r} features, given {features.encoder!r}"
            )
        return SelectOutput(rows=stratified_argmax(scores, k), scores=scores, extras=extras)
