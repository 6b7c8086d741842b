"""An lmms-eval model backed by vidsieve: ``lmms-eval --model vidsieve --model_args ...``.

::

    lmms-eval --model vidsieve \\
        --model_args pretrained=lmms-lab/llava-onevision-qwen2-7b-ov-hf,frames=ktv,tokens=aot,budget_frames=32,budget_tokens=6272 \\
        --tasks videomme,longvideobench_val_v --batch_size 1

lmms-eval (>= 0.7) finds external models through the Python entry-point group
``lmms_eval.models``; vidsieve's packaging must declare (pyproject.toml)::

    [project.entry-points."lmms_eval.models"]
    vidsieve = "vidsieve.eval.lmms_plugin:manifests"

Without that entry point, ``python -m vidsieve.eval.lmms_plugin <lmms-eval arguments>``
registers the model in-process and runs lmms-eval's own command line.

lmms-eval builds the prompt (its own subtitle rule included) and the task's generation
arguments; vidsieve chooses frames and tokens under the budget and generates. Requests about
the same video are answered together so per-video work is reused. lmms-eval is optional:
this module imports without it (the class then derives from ``object``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

try:  # lmms-eval is an optional dependency
    from lmms_eval.api.model import lmms as _LMMBase

    HAS_LMMS_EVAL = True
except ImportError:  # pragma: no cover - depends on the environment
    _LMMBase = object  # type: ignore[assignment,misc]
    HAS_LMMS_EVAL = False

from vidsieve.errors import ParameterError

from .answerers import AnswerRequest
from .questions import Question

MODEL_ID = "vidsieve"
CLASS_PATH = "vidsieve.eval.lmms_plugin.VidsieveLMM"


def _opt_int(v: Any) -> int | None:
    if v is None or (isinstance(v, str) and v.lower() in ("", "none", "null")):
        return None
    if isinstance(v, bool) or not float(v).is_integer():
        raise ParameterError(f"Expected an integer model argument; got {v!r}.")
    return int(v)


def _fixed_prompt(text: str) -> Callable[[Any], str]:
    """lmms-eval already built the prompt (its subtitles included): use it whatever the frames."""

    def build(timestamps: Any) -> str:
        return text

    return build


class VidsieveLMM(_LMMBase):  # type: ignore[misc,valid-type]
    """lmms-eval model: ``pretrained`` (hub id, folder, ``tiny[:family]`` or ``fake``),
    ``frames``, ``tokens``, ``budget_frames``, ``budget_tokens``, ``device``, ``dtype``,
    ``attn``, ``reuse`` (per-video reuse, default True), ``kv_reuse`` (shared-prefix KV cache,
    default False), ``batch_size`` (recorded)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str = "tiny",
        frames: str = "uniform",
        tokens: str | None = None,
        budget_frames: int | str = 32,
        budget_tokens: int | str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        attn: str = "auto",
        reuse: bool | str = True,
        kv_reuse: bool | str = False,
        batch_size: int | str = 1,
        uniform_rule: str = "linspace",
        **kwargs: Any,
    ) -> None:
        if HAS_LMMS_EVAL:
            super().__init__()
        else:
            self.task_dict: dict[str, Any] = {}
        if kwargs:
            raise ParameterError(
                f"Unknown vidsieve model argument(s): {', '.join(sorted(kwargs))}. Known: pretrained, frames, "
                "tokens, budget_frames, budget_tokens, device, dtype, attn, reuse, kv_reuse, batch_size, uniform_rule."
            )
        from .models import load_answerer

        self._rank = int(os.environ.get("RANK", "0") or 0)
        self._world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
        self.batch_size_per_gpu = int(batch_size)
        def flag(v: bool | str) -> bool:
            return v if isinstance(v, bool) else str(v).lower() not in ("0", "false", "no", "off")

        self.config = SimpleNamespace(
            model=str(pretrained), frames=str(frames), tokens=None if tokens in (None, "", "none") else str(tokens),
            budget_frames=_opt_int(budget_frames) or 32, budget_tokens=_opt_int(budget_tokens), device=device,
            dtype=dtype, attn=attn, reuse=flag(reuse), kv_reuse=flag(kv_reuse), seed=0, uniform_rule=uniform_rule, extra={},
        )
        self.answerer = load_answerer(self.config)
        self.last_stats: list[dict[str, Any]] = []

    # lmms-eval reads these
    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def _video_of(self, req: Any) -> tuple[str, dict[str, Any], str]:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
        doc = self.task_dict[task][split][doc_id]
        visuals = doc_to_visual(doc)
        while isinstance(visuals, (list, tuple)) and visuals and isinstance(visuals[0], (list, tuple)):
            visuals = visuals[0]
        if not visuals or not isinstance(visuals[0], (str, os.PathLike)):
            raise ParameterError(
                f"vidsieve answers video tasks: {task} doc {doc_id} gave {type(visuals).__name__} visuals, "
                "not a video path."
            )
        return str(visuals[0]), dict(gen_kwargs or {}), f"{task}:{split}:{doc_id}"

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Answer lmms-eval ``generate_until`` requests (in their order)."""
        from tqdm import tqdm

        out: list[str | None] = [None] * len(requests)
        by_video: dict[str, list[tuple[int, dict[str, Any], str, str]]] = {}
        for i, req in enumerate(requests):
            video, gk, key = self._video_of(req)
            by_video.setdefault(video, []).append((i, gk, key, str(req.args[0])))
        self.last_stats = [{} for _ in requests]
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="vidsieve")
        for video, items in by_video.items():
            session = self.answerer.open(Path(video))
            try:
                for i, gk, key, context in items:
                    until = gk.pop("until", None)
                    q = Question(benchmark="lmms-eval", qid=key, video_id=video, video=Path(video),
                                 question=context, options=(), letters=("A", "B", "C", "D"), answer="")
                    ans = session.answer(AnswerRequest(
                        question=q, query=context, build_prompt=_fixed_prompt(context),
                        max_new_tokens=int(gk.get("max_new_tokens", 16)),
                    ))
                    text = ans.text
                    for stop in [until] if isinstance(until, str) else (until or []):
                        if stop:
                            text = text.split(stop)[0]
                    out[i] = text
                    self.last_stats[i] = {"frames": ans.frames, "visual_tokens": ans.visual_tokens,
                                          "timings": ans.timings, "reused": ans.reused}
                    bar.update(1)
            finally:
                session.close()
        bar.close()
        return [o or "" for o in out]

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError("vidsieve's lmms-eval model only answers generate_until tasks.")

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError("vidsieve's lmms-eval model only answers generate_until tasks.")


def manifests() -> list[Any]:
    """Entry-point payload for the ``lmms_eval.models`` group."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)]


def register() -> None:
    """Register ``--model vidsieve`` in this process's lmms-eval model registry."""
    import lmms_eval.models as models

    for m in manifests():
        models.MODEL_REGISTRY_V2.register_manifest(m, overwrite=True)
    models.AVAILABLE_MODELS[MODEL_ID] = CLASS_PATH.rsplit(".", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    """``python -m vidsieve.eval.lmms_plugin <lmms-eval arguments>``."""
    if not HAS_LMMS_EVAL:
        print("vidsieve: error: lmms-eval is not installed (pip install lmms-eval).", file=sys.stderr)
        return 2
    register()
    from lmms_eval.__main__ import cli_evaluate

    sys.argv = ["lmms-eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
