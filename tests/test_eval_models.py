"""Runs with a tiny random model of a real HF class (Qwen2-VL) wrapped by vidsieve, per-video
reuse against from-scratch answers, and the lmms-eval plugin's generate_until."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from vidsieve.eval.miniature import make_videomme
from vidsieve.eval.models import WrappedAnswerer, build_tiny
from vidsieve.eval.runner import RunConfig, run_questions
from vidsieve.eval.videomme import load_videomme

from vidsieve.types import Budget

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_videomme(tmp_path_factory.mktemp("vm"), n_videos=2)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny("qwen2_vl")


def _run(vm: Path, tiny: tuple[Any, Any], out: Path, *, reuse: bool, tokens: str | None = None,
         budget_tokens: int | None = None, kv: bool = False) -> list[dict[str, Any]]:
    model, proc = tiny
    ans = WrappedAnswerer(model, proc, model_id="tiny", frames="uniform", tokens=tokens,
                          budget=Budget(frames=4, tokens=budget_tokens), reuse=reuse, kv_reuse=kv)
    cfg = RunConfig(benchmark="videomme", data=str(vm), model="tiny", out=str(out), frames="uniform",
                    tokens=tokens, budget_frames=4, budget_tokens=budget_tokens, subtitles=True, reuse=reuse,
                    kv_reuse=kv)
    run_questions(load_videomme(vm), ans, cfg, progress=False)
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("tokens", "budget_tokens", "kv"), [(None, None, False), ("resize", 10, True)])
def test_reuse_identical_to_from_scratch(vm: Path, tiny: tuple[Any, Any], tmp_path: Path,
                                         tokens: str | None, budget_tokens: int | None, kv: bool) -> None:
    a = _run(vm, tiny, tmp_path / "reuse", reuse=True, tokens=tokens, budget_tokens=budget_tokens, kv=kv)
    b = _run(vm, tiny, tmp_path / "scratch", reuse=False, tokens=tokens, budget_tokens=budget_tokens)
    assert len(a) == len(b) == 6 and not any(r["error"] for r in a)
    for ra, rb in zip(a, b):
        for k in ("output", "parsed", "frames", "timestamps", "visual_tokens", "prompt", "output_tokens"):
            assert ra[k] == rb[k], k
    # first question of a video computes, the next two reuse frames and vision-tower output
    later = ["frames", "vision_tower", "kv_prefix"] if kv else ["frames", "vision_tower"]
    assert [r["reused"] for r in a[:3]] == [[], later, later]
    assert all(r["reused"] == [] for r in b)
    assert all(r["num_frames"] == 4 and r["output_tokens"] == 16 for r in a)
    if budget_tokens is not None:
        assert all(r["visual_tokens"] <= budget_tokens for r in a)
    # the prompt length as fed = text tokens + kept visual tokens
    model, proc = tiny
    for r in a:
        n_text = len(proc.tokenizer(r["prompt"])["input_ids"])
        assert r["input_tokens"] > r["visual_tokens"] + n_text
    m = json.loads((tmp_path / "reuse" / "metrics.json").read_text())
    assert m["timing"]["questions_with_reuse"] == 4 and m["timing"]["mean_prefill_s"] > 0


def test_cli_tiny_end_to_end(vm: Path, tmp_path: Path) -> None:
    from vidsieve.cli import main

    out = tmp_path / "cli"
    rc = main(["eval", "videomme", "--data", str(vm), "--model", "tiny", "--frames", "uniform",
               "--budget-frames", "4", "--out", str(out), "--limit", "2", "--no-progress"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["answerer"]["model_class"] == "Qwen2VLForConditionalGeneration"
    assert run["answerer"]["kv_cache_reuse"] is False
    assert run["versions"]["transformers"] != "not installed"
    # --frames uniform samples like lmms-eval: linspace over ALL frames of the file
    from vidsieve.decoding import probe
    from vidsieve.selectors.uniform import linspace_rows

    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    n = probe(rows[0]["video"]).num_frames
    assert rows[0]["frames"] == linspace_rows(n, 4).tolist()
    assert run["protocol"]["uniform_over"] == "all"


# --- lmms-eval plugin -------------------------------------------------------------------------


@dataclass
class StandInInstance:
    """Shaped like lmms_eval.api.instance.Instance for a generate_until request (0.7.3):
    args = (context, gen_kwargs, doc_to_visual, doc_id, task, split)."""

    request_type: str
    arguments: tuple
    idx: int
    metadata: dict = field(default_factory=dict)

    @property
    def args(self) -> tuple:
        return self.arguments


def test_lmms_plugin_generate_until(vm: Path, tiny: tuple[Any, Any]) -> None:
    from vidsieve.eval.lmms_plugin import VidsieveLMM

    lm = VidsieveLMM(pretrained="tiny", frames="uniform", budget_frames="4", budget_tokens="None")
    qs = load_videomme(vm)
    docs = [{"videoID": q.video_id, "path": str(q.video)} for q in qs]
    lm.task_dict = {"videomme": {"test": docs}}
    contexts = [f"Question {i}: what happens ?" for i in range(len(docs))]
    order = [3, 0, 4, 1]  # interleave the two videos: answers must come back in request order
    reqs = [
        StandInInstance("generate_until", (contexts[i], {"max_new_tokens": 5, "until": ["zzz"]},
                                           lambda d: [d["path"]], i, "videomme", "test"), idx=n)
        for n, i in enumerate(order)
    ]
    texts = lm.generate_until(reqs)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    # the same answers one request at a time (fresh sessions, no reuse)
    for n in (1, 2):
        assert lm.generate_until([reqs[n]]) == [texts[n]]
    assert lm.last_stats[0]["visual_tokens"] > 0 and len(lm.last_stats[0]["frames"]) == 4
    with pytest.raises(NotImplementedError):
        lm.loglikelihood(reqs)
    from vidsieve.errors import ParameterError

    with pytest.raises(ParameterError, match="Unknown vidsieve model argument.*frame_budget"):
        VidsieveLMM(pretrained="fake", frame_budget=3)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen3_vl"])
def test_kv_prefix_reuse_other_families(vm: Path, family: str) -> None:
    """LLaVA-OV (newline token after the video) and Qwen3-VL (deepstack): the shared-prefix
    cache gives the same tokens as answering from scratch."""
    from vidsieve.eval.answerers import AnswerRequest

    model, proc = build_tiny(family)
    qs = load_videomme(vm)[:3]
    texts = {}
    for kv in (False, True):
        ans = WrappedAnswerer(model, proc, model_id=family, frames="uniform", tokens="resize",
                              budget=Budget(frames=4, tokens=30), reuse=kv, kv_reuse=kv)
        sess = ans.open(qs[0].video)
        # prompts in the tiny vocabulary, so the random model writes words, not only specials
        prompts = ["what happens after the man opens door ?", "is there a red ball ? yes no", "describe video"]
        got = [sess.answer(AnswerRequest(question=q, query=p, build_prompt=lambda ts, p=p: p, max_new_tokens=6))
               for q, p in zip(qs, prompts)]
        texts[kv] = [a.text for a in got]
        if kv:
            assert [a.reused for a in got][1:] == [["frames", "vision_tower", "kv_prefix"]] * 2
    assert texts[True] == texts[False]
    assert len(set(texts[True])) > 1  # the answers differ between questions (a meaningful check)
