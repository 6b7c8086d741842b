"""QuoTA support built on a wrapped model: the yes/no frame scorer and CoT query decoupling.

:class:`FrameAsker` implements the ``ask(features, rows, prompt) -> p`` callable of
:class:`vidsieve.selectors.quota_scoring.YesNoScorer`: each candidate frame is shown to the
VLM as an image with the yes/no question, in batches (left padding), and ``p`` is the softmax
probability of the answer token "A" at the last position (the released protocol; released
scorer: Qwen2-VL-2B). :func:`use_vlm_quota` puts a QuoTA frame selector with that scorer and
with CoT decoupling by the wrapped model's own text-only ``generate`` on a wrapped model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidsieve.errors import ParameterError
from vidsieve.types import FrameFeatures, Frames

from .base import VideoLLM, to_device


class FrameAsker:
    """``ask(features, rows, prompt)``: p("A") per candidate frame from a wrapped VLM.

    vlm:        the wrapped model that answers (its processor's image path is used).
    video_of:   the wrapped model whose current video is scored (default: ``vlm``); lets a
                small scorer VLM score frames for a larger answering model.
    batch_size: frames per forward pass. answer: the answer token ("A").
    """

    def __init__(self, vlm: VideoLLM, *, video_of: VideoLLM | None = None, batch_size: int = 8,
                 answer: str = "A") -> None:
        self.vlm = vlm
        self.video_of = video_of if video_of is not None else vlm
        self.batch_size = batch_size
        self.answer = answer

    def __repr__(self) -> str:
        return f"FrameAsker({type(self.vlm).__name__}, batch_size={self.batch_size}, answer={self.answer!r})"

    def _pixels(self, features: FrameFeatures, rows: np.ndarray) -> np.ndarray:
        video = self.video_of.current_video
        wanted = features.indices[rows]
        if isinstance(video, Frames):
            pos = np.searchsorted(video.indices, wanted)
            if np.any(pos >= len(video)) or np.any(video.indices[np.minimum(pos, len(video) - 1)] != wanted):
                raise ParameterError("The scored frames are not in the pre-decoded video.")
            return video.pixels[pos]
        if video is None:
            raise ParameterError("FrameAsker scores the video being prepared; call it through vlm.prepare/generate.")
        from vidsieve.decoding import decode_frames

        return decode_frames(str(video), wanted).pixels

    def answer_id(self) -> int:
        ids = self.vlm.processor.tokenizer.encode(self.answer, add_special_tokens=False)
        if len(ids) != 1:
            raise ParameterError(f"The answer {self.answer!r} is not a single token for this tokenizer.")
        return int(ids[0])

    def __call__(self, features: FrameFeatures, rows: np.ndarray, prompt: str) -> np.ndarray:
        pixels = self._pixels(features, np.asarray(rows, dtype=np.int64))
        text = self.vlm.image_text(prompt)
        tok = self.vlm.processor.tokenizer
        aid = self.answer_id()
        out = np.empty(len(pixels), dtype=np.float64)
        for start in range(0, len(pixels), self.batch_size):
            batch = list(pixels[start:start + self.batch_size])
            side = tok.padding_side
            tok.padding_side = "left"
            try:
                inputs = self.vlm.processor(text=[text] * len(batch), images=batch, return_tensors="pt", padding=True)
            finally:
                tok.padding_side = side
            inputs = to_device(dict(inputs), self.vlm._device())
            with torch.no_grad():
                logits = self.vlm.model(**inputs, logits_to_keep=1).logits[:, -1].float()
            out[start:start + len(batch)] = torch.softmax(logits, dim=-1)[:, aid].cpu().numpy()
        return out


def use_vlm_quota(vlm: VideoLLM, *, scorer_vlm: VideoLLM | None = None, decouple: bool = True,
                  batch_size: int = 8, max_new_tokens: int = 128, **quota_params: Any) -> Any:
    """Give ``vlm`` a QuoTA frame selector scored by a VLM (``scorer_vlm``, default ``vlm``).

    With ``decouple=True`` the question is first turned into an object list by ``vlm``'s own
    text-only generation (QuoTA's CoT query decoupling). ``tokens_per_frame`` defaults to the
    wrapped model's native LLM tokens per frame when known. Returns the selector.
    """
    from vidsieve.registry import create_selector
    from vidsieve.selectors.quota_scoring import YesNoScorer

    asker = FrameAsker(scorer_vlm if scorer_vlm is not None else vlm, video_of=vlm, batch_size=batch_size)

    def generate(text: str) -> str:
        return str(vlm.generate_text(text, max_new_tokens=max_new_tokens, do_sample=False))

    sel = create_selector("quota", scorer=YesNoScorer(asker), generate=generate if decouple else None, **quota_params)
    vlm.frame_selector = sel
    return sel
