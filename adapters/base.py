"""The shared machinery of the Hugging Face adapters (one small subclass per model family).

Route (transformers 5.x, exact):

1. Frames: a frame selector picks frames from cheap candidate features; only those are decoded
   and given to the HF processor with their true source indices and fps
   (``do_sample_frames=False`` + ``video_metadata``).
2. The model's own ``get_video_features`` encodes each video once.
3. Original positions come from the model's own position rule on the UNPRUNED sequence
   (``get_rope_index`` for Qwen M-RoPE; ``attention_mask.cumsum - 1`` for LLaVA).
4. A token selector keeps (or merges into) a subset of each frame's token grid. One boolean keep
   mask over the sequence cuts ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` and the
   position rows together; rows are re-padded on the left.
5. ``model.generate`` gets ``mm_encoder_outputs={"video": <pruned encoder output>}`` and explicit
   ``position_ids`` (never ``pixel_values_videos``), so generation extends each row from its
   last original position: generated tokens get the positions they would have had unpruned
   (``tests/test_adapters_exact.py`` checks every step's positions; the model's cached
   ``rope_deltas`` are never read because positions are always explicit).

Definitions used throughout:

* A *frame* of the token grid is what the encoder emits one ``[h, w]`` grid for. For LLaVA
  models that is one video frame. For Qwen2/2.5/3-VL it is one *temporal group* of
  ``temporal_patch_size`` (= 2) consecutive chosen frames: each LLM token covers 2 frames x
  (2x2 patches). The processor gets exactly the chosen frames and their metadata; it pads an
  odd count by repeating the last frame, and the per-group allotments follow that rule.
* Per-frame allotments from the frame selection (``Selection.frame_tokens``) are summed over
  the frames of a group; ``Selection.downscale`` (F2C) becomes ``TokenInput.downscale`` (max
  over a group) and caps the group's allotment at ``ceil(h/s) * ceil(w/s)``: the resolution
  change is applied after the encoder, on the token grid, for every family (the token selector
  decides how; ``resize``/``f2c-resolution`` resample the grid).
* ``budget.tokens`` is per video, counted as tokens entering the LLM; LLaVA-OneVision's one
  newline token per video is always kept and counted.

Vision-tower statistics for token selectors (``TokenInput.attention[layer]``: attention
received per token; ``cls_attention`` where the tower has a [CLS]) come from forward pre-hooks
on the tower's attention modules that exist only inside :meth:`VideoLLM.capture_tower_stats`:
each hook recomputes q and k as the module does (Qwen: rotary applied, per attention segment)
and calls ``vidsieve.kernels.attention_received``; the per-patch statistics are mapped onto the
LLM grid with the model's own reduction (Qwen: sum over each 2x2 merge window; LLaVA-OneVision:
the same bilinear pooling; LLaVA-NeXT-Video: the same average pooling). What is captured comes
from the token selector's ``tower_request`` (:mod:`.tower_stats`); a selector asking for
``pre_pool`` runs before the family's pooling where the family pools after the projector
(LLaVA-OneVision: :meth:`VideoLLM.pre_pool_selections`).

transformers 4.x (no ``mm_encoder_outputs``; detected with ``inspect.signature``): see
:mod:`.legacy`. Modules: :mod:`.frames` (chosen frames, grouping), :mod:`.tower_stats` (what
a token selector reads from the tower, and the hooks), :mod:`.sequence` (pruning and
re-padding, :class:`~.sequence.ModelInputs`), :mod:`.stats` (:class:`Stats`,
:class:`EncodeCache`), :mod:`.legacy`; this module holds :class:`VideoLLM`, the route itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import resource
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from vidsieve.encoders.base import FrameEncoder
from vidsieve.errors import ParameterError
from vidsieve.params import Float, Int, NoneValue, Predicate, Str, check_param, param_error
from vidsieve.pipeline import FrameStage
from vidsieve.registry import create_encoder, create_selector, create_token_selector
from vidsieve.selectors.base import FrameSelector
from vidsieve.tokens.base import TokenInput, TokenSelection, TokenSelector
from vidsieve.types import Budget, Frames, Query, Selection

from .errors import AdapterError
from .frames import PreparedVideo, VideoTokens, as_frames, group_frames
from .sequence import ModelInputs, prune_sequences, text_positions, video_keep_mask
from .stats import EncodeCache, FirstTokenTimer, Stats
from .tower_stats import TowerRequest, capture, request_of

__all__ = [
    "AdapterError", "EncodeCache", "ModelInputs", "PreparedVideo", "Stats", "VideoLLM", "VideoTokens",
    "accepts", "to_device",
]

VideoInput = Any  # a path, a Frames, a uint8 [T, H, W, 3] array, or a PreparedVideo


class VideoLLM:
    """A Hugging Face video-LLM with frame and token selection under a budget.

    Build it with :func:`vidsieve.wrap`. Parameters:

    frames:        a registered frame-selector name or a FrameSelector instance.
    tokens:        a registered token-selector name or a TokenSelector instance ("none" keeps all).
    budget:        :class:`~vidsieve.types.Budget` (frames per video, LLM tokens per video) or an
                   int (frames).
    encoder:       frame encoder (name or instance) for the candidate features (default "pixel").
    candidate_fps: candidate frames per second sampled from a file; ``max_candidates`` caps them.
    positions:     "original" (kept tokens keep their unpruned positions) or "compact"
                   (LLaVA only: 1-D positions renumbered after pruning). Qwen M-RoPE always
                   keeps original (t, h, w).
    selector_params / token_params: keyword arguments for selectors given by name.
    cache:         feature cache for files (passed to ``extract_features``).
    """

    #: HF ``config.model_type`` values this adapter handles.
    model_types: tuple[str, ...] = ()
    #: processor class names this adapter accepts.
    processor_classes: tuple[str, ...] = ()
    #: chosen frames per token-grid frame (2 for Qwen's temporal patches).
    temporal_group: int = 1
    #: whether positions are M-RoPE ``[4, B, L]`` (text row + t, h, w).
    mrope: bool = False
    #: the placeholder the prompt carries for one video.
    video_placeholder: str = "<video>"
    #: fewest frames the processor accepts; fewer chosen frames are fed with the last one repeated
    #: (Qwen3-VL's processor refuses a single frame, so there is no plain-model run to match).
    min_processor_frames: int = 1
    #: kwargs of get_rope_index beyond the Qwen2-VL ones, taken from the processor output.
    rope_extra_keys: tuple[str, ...] = ()

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        frames: Any = "uniform",
        tokens: Any = "none",
        budget: Budget | int = 32,
        encoder: Any = "pixel",
        candidate_fps: float = 1.0,
        max_candidates: int | None = 5400,
        positions: str = "original",
        selector_params: dict[str, Any] | None = None,
        token_params: dict[str, Any] | None = None,
        cache: bool | str = True,
    ) -> None:
        self.model = model
        self.processor = processor
        owner = type(self).__name__
        check_param(owner, "frames", frames, [Str(), Predicate(lambda v: isinstance(v, FrameSelector),
                                                              "a FrameSelector instance")])
        check_param(owner, "tokens", tokens, [Str(), Predicate(lambda v: isinstance(v, TokenSelector),
                                                              "a TokenSelector instance")])
        check_param(owner, "encoder", encoder, [Str(), Predicate(lambda v: isinstance(v, FrameEncoder),
                                                                "a FrameEncoder instance")])
        check_param(owner, "budget", budget, [Int(ge=1), Predicate(lambda v: isinstance(v, Budget), "a Budget")])
        check_param(owner, "candidate_fps", candidate_fps, [Float(gt=0.0)])
        check_param(owner, "max_candidates", max_candidates, [Int(ge=1), NoneValue()])
        self.budget = budget if isinstance(budget, Budget) else Budget(frames=budget)
        self.frame_selector = (
            create_selector(frames, **(selector_params or {})) if isinstance(frames, str) else frames
        )
        self.token_selector: TokenSelector = (
            create_token_selector(tokens, **(token_params or {})) if isinstance(tokens, str) else tokens
        )
        self.encoder = create_encoder(encoder) if isinstance(encoder, str) else encoder
        if positions not in ("original", "compact"):
            raise ParameterError(f"positions must be 'original' or 'compact'. Got {positions!r} instead.")
        if positions == "compact" and self.mrope:
            raise ParameterError(
                f"{type(self).__name__}: positions='compact' is only defined for 1-D positions (LLaVA); "
                "Qwen M-RoPE keeps each kept token's original (t, h, w)."
            )
        self.positions = positions
        self.candidate_fps = candidate_fps
        self.max_candidates = max_candidates
        self.cache = cache
        self.last_stats = Stats()
        self._selecting: str | Frames | None = None
        self._check_pair()
        #: transformers 4.x route (no ``mm_encoder_outputs`` in forward), chosen by feature
        #: detection; see :meth:`legacy_kwargs` and :meth:`legacy_context`.
        self.legacy = not accepts(self.model.forward, "mm_encoder_outputs")

    # ------------------------------------------------------------------ family hooks
    def _check_pair(self) -> None:
        mt = getattr(self.model.config, "model_type", "")
        if mt not in self.model_types:
            raise AdapterError(f"{type(self).__name__} handles {self.model_types}; the model is {mt!r}.")
        pname = type(self.processor).__name__
        if pname not in self.processor_classes:
            raise AdapterError(
                f"The processor ({pname}) does not belong to a {mt} model; expected one of "
                f"{', '.join(self.processor_classes)}. Load both with the same checkpoint id."
            )
        if not hasattr(self.model, "generate"):
            raise AdapterError(f"{type(self.model).__name__} cannot generate; load the *ForConditionalGeneration class.")

    @property
    def video_token_id(self) -> int:
        return int(self.processor.video_token_id)

    def encode(self, inputs: dict[str, Any]) -> tuple[Any, list[VideoTokens]]:
        """Run the model's ``get_video_features`` once; return its output and per-video grids."""
        raise NotImplementedError

    def pruned_output(
        self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]
    ) -> Any:
        """The ``mm_encoder_outputs["video"]`` object holding the kept features.

        feats: per video ``[K_i, D]`` kept features in placeholder order.
        keeps: per video bool ``[N_i]`` keep mask over the unpruned placeholder run.
        """
        raise NotImplementedError

    def original_positions(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Positions of the unpruned batch: ``[4, B, L]`` (M-RoPE) or ``[B, L]``."""
        att = inputs["attention_mask"]
        pos = att.long().cumsum(-1) - 1
        return pos.masked_fill(att == 0, 0)

    def tower_modules(self) -> list[tuple[int, torch.nn.Module]]:
        """(layer index, attention module) of the vision tower, for statistics hooks."""
        return []

    def _qk_from_call(self, module: Any, args: tuple, kwargs: dict) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """q, k ``[B, H, L, d]`` and scale as the attention module computes them (one per chunk)."""
        raise NotImplementedError

    def tower_stats_to_grid(self, stats: list[torch.Tensor], videos: list[VideoTokens]) -> list[torch.Tensor]:
        """Map per-chunk tower statistics ``[L]`` to per-video ``[F, h*w]`` on the LLM grid."""
        raise NotImplementedError

    def pre_projector_to_grid(self, feats: list[torch.Tensor], videos: list[VideoTokens]) -> list[torch.Tensor | None]:
        """Map the captured projector inputs to per-video ``[F, h, w, D']`` on the LLM grid, or
        None per video where the family has no such grid (the projector input is not on the
        LLM grid, e.g. when pooling follows the projector)."""
        return [None for _ in videos]

    def text_for(self, prompt: str) -> str:
        """The model input text for one user prompt with one video (chat template if any)."""
        tmpl = getattr(self.processor, "chat_template", None)
        if tmpl:
            messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return self.default_text(prompt)

    def default_text(self, prompt: str) -> str:
        return f"{self.video_placeholder}\n{prompt}"

    #: the placeholder the prompt carries for one image (QuoTA's per-frame scorer).
    image_placeholder: str = "<image>"

    def image_text(self, prompt: str) -> str:
        """The model input text for one prompt about one image (chat template if any)."""
        tmpl = getattr(self.processor, "chat_template", None)
        if tmpl:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return self.default_text(prompt).replace(self.video_placeholder, self.image_placeholder)

    # ------------------------------------------------------------------ frames
    def _as_frames(self, video: VideoInput, fps: float | None) -> tuple[Frames, float, int, str | None]:
        return as_frames(video, fps, type(self).__name__)

    @property
    def current_video(self) -> str | Frames | None:
        """The video whose frames are being selected (a path or the in-memory frames), only
        while :meth:`select_frames` runs (a VLM frame scorer reads the candidate pixels from
        it, see :mod:`.scoring`); None otherwise."""
        return self._selecting

    @contextlib.contextmanager
    def selecting(self, video: str | Frames) -> Iterator[None]:
        """Make ``video`` the :attr:`current_video` for the duration of the block."""
        prev, self._selecting = self._selecting, video
        try:
            yield
        finally:
            self._selecting = prev

    def frame_stage(self) -> FrameStage:
        """The frame stage this adapter runs (:class:`vidsieve.pipeline.FrameStage` with its
        encoder, frame selector and candidate sampling)."""
        return FrameStage(encoder=self.encoder, frames=self.frame_selector, fps=self.candidate_fps,
                          max_frames=self.max_candidates, cache=self.cache, owner=type(self).__name__)

    def select_frames(self, video: VideoInput, prompt: str, fps: float | None = None) -> PreparedVideo:
        """Choose and decode the frames of one video (:meth:`frame_stage`: candidates, frame
        selection, decoding of the chosen frames). Content-free selectors (``reads ==
        "nothing"``) read no candidate features."""
        if not isinstance(prompt, str):
            raise param_error(type(self).__name__, "prompts", "a str or a list of str (one per video)", prompt)
        fr, vfps, _total, path = self._as_frames(video, fps)
        with self.selecting(path if path is not None else fr):
            chosen = self.frame_stage().run(path if path is not None else fr, budget=self.budget,
                                            query=Query(text=prompt), video_fps=None if path is not None else vfps)
        if chosen.frames is None:  # pragma: no cover - decode_size is never False here
            raise AdapterError("The frame stage returned no frames.")
        meta = chosen.meta
        pv = self._group(chosen.frames, meta.effective_fps, meta.num_frames, chosen.selection)
        pv.timings = {"features": chosen.timings.get("features", 0.0), "decode": chosen.timings.get("decode", 0.0)}
        return pv

    def _group(self, fr: Frames, fps: float, total: int, sel: Selection | None) -> PreparedVideo:
        """:func:`.frames.group_frames` with this family's temporal group and frame minimum."""
        return group_frames(fr, fps, total, sel, group=self.temporal_group, min_frames=self.min_processor_frames)

    # ------------------------------------------------------------------ processor
    def process(self, texts: list[str], videos: list[PreparedVideo]) -> dict[str, Any]:
        """Run the HF processor on the chosen frames with their true indices and fps.

        Returns the processor's output as a :class:`~.sequence.ModelInputs` whose ``videos``
        attribute holds the prepared videos it was made from (read by position rules that need
        the frames' times, e.g. Qwen2.5-VL's ``temporal_positions="timestamps"``)."""
        metadata = [self.video_metadata(v) for v in videos]
        tok = self.processor.tokenizer
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            out = self.processor(
                text=texts, videos=[v.frames.pixels for v in videos], return_tensors="pt", padding=True,
                **self.processor_video_kwargs(metadata),
            )
        finally:
            tok.padding_side = side
        res = ModelInputs(out)
        res.pop("token_type_ids", None)  # some tokenizers add it; the VLMs take no such input
        res.videos = list(videos)
        return res

    def video_metadata(self, video: PreparedVideo) -> dict[str, Any]:
        """The processor's ``video_metadata`` for one prepared video: the source length and rate
        and the chosen frames' source indices."""
        return {"total_num_frames": video.total_frames, "fps": video.fps,
                "frames_indices": video.frames.indices.tolist()}

    def processor_video_kwargs(self, metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"do_sample_frames": False, "video_metadata": metadata}

    # ------------------------------------------------------------------ statistics hooks
    #: whether the family pools the projected grid AFTER the projector, so that a token selector
    #: asking for ``pre_pool`` runs on the tower's own grid (:meth:`pre_pool_selections`).
    pools_after_projector: bool = False
    #: whether the projector's input is on the LLM grid (pooling, if any, comes before it), so
    #: ``TokenInput.pre_projector`` can be given (:meth:`pre_projector_to_grid`).
    pre_projector_on_llm_grid: bool = False

    def tower_request(self) -> TowerRequest:
        """What the token selector reads from the vision tower (:mod:`.tower_stats`); ``pre_pool``
        only where the family pools after the projector and the selector can run there."""
        req = request_of(self.token_selector, self.has_cls_token())
        if req.pre_pool and not (self.pools_after_projector and hasattr(self.token_selector, "select_before_pooling")):
            req = dataclasses.replace(req, pre_pool=False)
        if req.pre_projector and not self.pre_projector_on_llm_grid:
            req = dataclasses.replace(req, pre_projector=False)  # nothing on the LLM grid to capture
        return req

    def pre_pool_selections(self, vids: list[VideoTokens], inputs: list[TokenInput],
                            stats: dict[str, Any]) -> list[TokenSelection]:
        """Token selections on the LLM grid made by a selector that runs before the family's
        pooling (``select_before_pooling``); only families with ``pools_after_projector``."""
        raise AdapterError(f"{type(self).__name__} has no pooling after the projector.")

    def has_cls_token(self) -> bool:
        """Whether the vision tower prepends a [CLS] token."""
        return False

    def projector_module(self) -> torch.nn.Module | None:
        """The module mapping vision features to the LLM width (for ``pre_projector``)."""
        return None

    def capture_tower_stats(self, layers: Sequence[int], want_cls: bool | str | None,
                            *, pre_projector: bool = False,
                            pre_pool: bool = False) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Hooks on the vision tower for one forward (see :func:`.tower_stats.capture`).

        want_cls: False/None, ``"raw"`` (released KTV's full-width logits) or ``"softmax"``
        (``True`` means ``"softmax"``).
        """
        cls = "softmax" if want_cls is True else (want_cls or None)
        req = TowerRequest(attention_layers=tuple(layers), cls=cls, pre_projector=pre_projector, pre_pool=pre_pool)
        return capture(self, req)

    # ------------------------------------------------------------------ token selection
    def _token_inputs(self, vids: list[VideoTokens], prepared: list[PreparedVideo],
                      stats: dict[str, Any] | None) -> list[TokenInput]:
        att: list[dict[int, torch.Tensor]] = [{} for _ in vids]
        cls: list[torch.Tensor | None] = [None for _ in vids]
        if stats is not None:
            for layer, rows in stats["attention"].items():
                for i, g in enumerate(self.tower_stats_to_grid(rows, vids)):
                    att[i][layer] = g
            if stats["cls"]:
                for i, g in enumerate(self.tower_stats_to_grid(stats["cls"], vids)):
                    cls[i] = g
        pre: list[torch.Tensor | None] = [None for _ in vids]
        if stats is not None and stats.get("pre_projector"):
            pre = list(self.pre_projector_to_grid(stats["pre_projector"], vids))
        out = []
        for i, (vt, pv) in enumerate(zip(vids, prepared)):
            f, h, w, _ = vt.grid.shape
            tail = int(vt.tail.shape[0])
            allot = pv.group_allotment
            if pv.group_downscale is not None:
                s = np.maximum(pv.group_downscale, 1.0)
                cap = np.ceil(h / s).astype(np.int64) * np.ceil(w / s).astype(np.int64)
                allot = np.minimum(cap, h * w if allot is None else allot)
            budget = None if self.budget.tokens is None else self.budget.tokens - tail
            if budget is not None and budget < 1:
                raise ParameterError(f"budget.tokens={self.budget.tokens} leaves no visual token after the {tail} fixed token(s).")
            pre_i = pre[i]
            out.append(TokenInput(
                # selectors compute in float32; pure pruning still gathers the model's own tensors
                tokens=vt.grid.detach().float(), allotment=allot, budget=budget, attention=att[i], cls_attention=cls[i],
                pre_projector=None if pre_i is None else pre_i.detach().float(),
                timestamps=pv.group_timestamps, downscale=pv.group_downscale,
            ))
        return out

    # ------------------------------------------------------------------ the route
    def prepare(
        self,
        videos: VideoInput | Sequence[VideoInput],
        prompts: str | Sequence[str],
        *,
        fps: float | None = None,
        encode_cache: EncodeCache | None = None,
    ) -> ModelInputs:
        """The exact keyword arguments for ``model.generate`` (and ``model(**kw)``), as a
        :class:`.sequence.ModelInputs` (a dict) that also carries this call's ``stats``
        (:class:`Stats`, also kept as ``self.last_stats``), token ``selections`` and, on
        transformers 4.x, the ``legacy_state`` that :meth:`generation_context` needs.

        videos: one video or a list (path, :class:`Frames`, uint8 ``[T, H, W, 3]``, or a
        :class:`PreparedVideo` from :meth:`select_frames`, fed without selecting again; ``fps``
        applies to arrays/Frames without a known rate). prompts: one per video.
        encode_cache: an :class:`EncodeCache` to fill (empty) or to reuse instead of running the
        vision tower (filled); every video must then be a PreparedVideo.
        On transformers 4.x (``self.legacy``) the kwargs are valid inside
        ``self.generation_context(kw)`` (which :meth:`generate` enters).
        """
        videos_l, prompts_l = self._as_batch(videos, prompts)
        st = Stats()
        if encode_cache is not None and not all(isinstance(v, PreparedVideo) for v in videos_l):
            raise ParameterError(
                "encode_cache needs PreparedVideo inputs (from select_frames): the cached tower output "
                "is only valid for the same chosen frames."
            )
        prepared = [self._prepared_video(v, p, fps) for v, p in zip(videos_l, prompts_l)]
        # features: candidate frames' descriptors (frame encoder); decode: the chosen frames
        st.timings["features"] = sum(pv.timings.get("features", 0.0) for pv in prepared)
        st.timings["decode"] = sum(pv.timings.get("decode", 0.0) for pv in prepared)
        st.timings["select"] = sum(pv.selection.timings.get("select", 0.0) for pv in prepared if pv.selection)
        texts = [self.text_for(p) for p in prompts_l]
        t1 = time.perf_counter()
        inputs = self.process(texts, prepared)
        st.encode_reused = encode_cache is not None and encode_cache.filled
        enc, vids, stats = self._tower(inputs, prepared, encode_cache)
        st.timings["encode"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        tis = self._token_inputs(vids, prepared, stats)
        if stats is not None and stats.get("projected"):
            sels = self.pre_pool_selections(vids, tis, stats)
        else:
            sels = [self.token_selector.select(ti) for ti in tis]
        kw = self._assemble(inputs, enc, vids, sels)
        st.timings["select"] += time.perf_counter() - t2
        st.frames = [int(np.unique(pv.frames.indices).size) for pv in prepared]
        st.frame_indices = [pv.frames.indices.tolist() for pv in prepared]
        st.original_tokens = [vt.num_tokens for vt in vids]
        st.tokens = [s.total + int(vt.tail.shape[0]) for s, vt in zip(sels, vids)]
        n_in = inputs["attention_mask"].sum(-1).tolist()
        st.prompt_tokens = [int(n) - o + t for n, o, t in zip(n_in, st.original_tokens, st.tokens)]
        self.last_stats = st
        kw.stats, kw.selections = st, sels
        return kw

    def _prepared_video(self, video: VideoInput, prompt: str, fps: float | None) -> PreparedVideo:
        """``video`` itself if already a :class:`PreparedVideo`, else :meth:`select_frames`."""
        if not isinstance(video, PreparedVideo):
            return self.select_frames(video, prompt, fps)
        if video.group_size != self.temporal_group:
            raise ParameterError(
                f"This PreparedVideo was grouped for temporal groups of {video.group_size} frame(s); "
                f"{type(self).__name__} needs whole groups of {self.temporal_group}. Use the PreparedVideo "
                "that this adapter's select_frames returned."
            )
        return video

    def _tower(self, inputs: dict[str, Any], prepared: list[PreparedVideo],
               cache: EncodeCache | None) -> tuple[Any, list[VideoTokens], dict[str, Any] | None]:
        """(encoder output, per-video tokens, tower statistics or None): run the vision tower once
        (hooks capturing what the token selector reads), or replay a filled ``cache``."""
        wanted = self.tower_request()
        if cache is not None and cache.encoded is not None:
            cache.check(self, prepared, wanted)
            enc, vids = cache.encoded
            return enc, vids, cache.stats
        with torch.no_grad():
            if not wanted.empty:
                with capture(self, wanted) as stats:
                    enc, vids = self.encode(inputs)
            else:
                stats = None
                enc, vids = self.encode(inputs)
        if cache is not None:
            cache.fill(self, prepared, wanted, (enc, vids), stats)
        return enc, vids, stats

    def _as_batch(self, videos: Any, prompts: Any) -> tuple[list[Any], list[str]]:
        single = isinstance(prompts, str)
        if prompts is None or not (single or isinstance(prompts, (list, tuple))):
            raise param_error(type(self).__name__, "prompts", "a str or a list of str (one per video)", prompts)
        if single:
            videos_l, prompts_l = [videos], [prompts]
        else:
            videos_l, prompts_l = list(videos), list(prompts)
        if len(videos_l) != len(prompts_l) or not videos_l:
            raise ParameterError(
                f"Give one prompt per video: got {len(videos_l)} video(s) and {len(prompts_l)} prompt(s)."
            )
        for p in prompts_l:
            if not isinstance(p, str):
                raise param_error(type(self).__name__, "prompts", "a str or a list of str (one per video)", p)
        return videos_l, prompts_l

    def _assemble(self, inputs: dict[str, Any], enc: Any, vids: list[VideoTokens],
                  sels: list[TokenSelection]) -> ModelInputs:
        pos = self.original_positions(inputs)
        keeps, feats = [], []
        for vt, sel in zip(vids, sels):
            f, h, w, d = vt.grid.shape
            keeps.append(video_keep_mask(sel.index, (f, h, w), int(vt.tail.shape[0])))
            kept = torch.cat([x.reshape(-1, d) for x in sel.gather(vt.grid)] or [vt.grid[:0, 0, 0]])
            feats.append(torch.cat([kept.to(vt.grid.dtype), vt.tail.to(vt.grid.device, vt.grid.dtype)]))
        out: dict[str, Any] = prune_sequences(inputs["input_ids"], inputs["attention_mask"], pos, keeps, self.video_token_id,
                              pad_id=self.processor.tokenizer.pad_token_id,
                              mm_token_type_ids=inputs.get("mm_token_type_ids"))
        text_row = text_positions(out["attention_mask"])
        if self.mrope:
            out["position_ids"][0] = text_row
        elif self.positions == "compact":
            out["position_ids"] = text_row
        if self.legacy:
            return self.legacy_kwargs(inputs, out, feats, keeps, enc)
        out["mm_encoder_outputs"] = {"video": self.pruned_output(enc, feats, keeps)}
        return ModelInputs(out)

    # ------------------------------------------------------------------ transformers 4.x
    def legacy_kwargs(self, inputs: dict[str, Any], out: dict[str, Any], feats: list[torch.Tensor],
                      keeps: list[torch.Tensor], enc: Any) -> ModelInputs:
        """Generate kwargs for transformers 4.x (models without ``mm_encoder_outputs``), with
        the call's ``legacy_state``.

        They are only valid inside :meth:`legacy_context` (``generation_context(kw)`` enters
        it; ``generate`` does); a family that has no 4.x route raises.
        """
        raise AdapterError(
            f"{type(self).__name__} has no route for this transformers version (no mm_encoder_outputs); "
            "install transformers>=5."
        )

    @contextlib.contextmanager
    def legacy_context(self, state: dict[str, Any] | None) -> Iterator[None]:
        yield

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        videos: VideoInput | Sequence[VideoInput],
        prompts: str | Sequence[str],
        *,
        fps: float | None = None,
        encode_cache: EncodeCache | None = None,
        skip_special_tokens: bool = True,
        return_ids: bool = False,
        **generate_kwargs: Any,
    ) -> Any:
        """Answer ``prompts`` about ``videos`` (one or a batch). Returns str or list[str]
        (``num_return_sequences`` answers per video, in order); ``return_ids=True`` returns the
        generated token ids ``[B*n, new]`` instead. Any ``model.generate`` keyword works.
        ``videos`` and ``encode_cache`` are as in :meth:`prepare`."""
        single = isinstance(prompts, str)
        dev = self._device()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        kw = self.prepare(videos, prompts, fps=fps, encode_cache=encode_cache)
        st = kw.stats
        kw = to_device(kw, dev)
        timer = FirstTokenTimer()
        from transformers import LogitsProcessorList

        lp = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
        lp.insert(0, timer)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        with self.generation_context(kw):
            out = self.model.generate(**kw, logits_processor=lp, **generate_kwargs)
        t2 = time.perf_counter()
        seqs = out.sequences if hasattr(out, "sequences") else out
        st.timings["prefill"] = (timer.first or t2) - t1
        st.timings["generate"] = t2 - (timer.first or t1)
        st.timings["time_to_first_token"] = (timer.first or t2) - t0
        st.timings["total"] = t2 - t0
        if dev.type == "cuda":
            st.peak_memory_bytes, st.peak_memory_kind = int(torch.cuda.max_memory_allocated(dev)), "cuda_max_allocated"
        else:
            st.peak_memory_bytes, st.peak_memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_max_rss"
        new = seqs[:, kw["input_ids"].shape[1]:]
        if return_ids:
            return new
        texts = self.processor.batch_decode(new, skip_special_tokens=skip_special_tokens)
        return texts[0] if single and len(texts) == 1 else texts

    @contextlib.contextmanager
    def generation_context(self, inputs: ModelInputs | None = None) -> Iterator[None]:
        """What generating from ``inputs`` (a :meth:`prepare` result) needs around the call: on
        transformers 4.x :meth:`legacy_context` with the call's state; on 5.x nothing
        (generation carries the explicit ``position_ids`` through every step, so the model
        never derives positions from its cached ``rope_deltas``)."""
        if self.legacy:
            state = getattr(inputs, "legacy_state", None)
            if state is None:
                raise AdapterError("On transformers 4.x pass the prepare() result: generation_context(kw).")
            with self.legacy_context(state):
                yield
        else:
            yield

    def _device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:  # pragma: no cover
            return torch.device("cpu")

    # ------------------------------------------------------------------ text-only generation
    def generate_text(self, prompts: str | Sequence[str], **generate_kwargs: Any) -> Any:
        """Text-only generation with the wrapped model (e.g. QuoTA's query decoupling)."""
        single = isinstance(prompts, str)
        plist = [prompts] if single else list(prompts)
        tmpl = getattr(self.processor, "chat_template", None)
        texts = [
            str(self.processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": p}]}],
                                                   add_generation_prompt=True, tokenize=False)) if tmpl else p
            for p in plist
        ]
        tok = self.processor.tokenizer
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(texts, return_tensors="pt", padding=True)
        finally:
            tok.padding_side = side
        enc = to_device(dict(enc), self._device())
        enc.pop("token_type_ids", None)
        out = self.model.generate(**enc, **generate_kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        res = self.processor.batch_decode(new, skip_special_tokens=True)
        return res[0] if single else res


def to_device(obj: Any, dev: torch.device) -> Any:
    """Move tensors in nested dicts/lists/ModelOutputs to ``dev`` (ModelOutputs in place)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dev)
    if type(obj) is not dict and hasattr(obj, "keys") and hasattr(obj, "__setitem__"):  # a ModelOutput
        for k in list(obj.keys()):
            obj[k] = to_device(obj[k], dev)
        return obj
    if isinstance(obj, dict):
        return {k: to_device(v, dev) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, dev) for v in obj)
    return obj


def accepts(fn: Any, name: str) -> bool:
    """Whether callable ``fn`` takes a parameter called ``name`` (feature detection)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False

