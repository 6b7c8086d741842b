"""Prompts of Video-MME and LongVideoBench, character for character as lmms-eval builds them.

Sources (lmms-eval 0.7.3, identical on main as of 2026-08):
``lmms_eval/tasks/videomme/utils.py`` (``videomme_doc_to_text``,
``videomme_doc_to_text_subtitle``, ``videomme_doc_to_text_qwen3vl``),
``lmms_eval/tasks/videomme/videomme.yaml`` (post prompts per model family),
``lmms_eval/tasks/longvideobench/utils.py`` (``longvideobench_doc_to_text``) and
``longvideobench_val_v.yaml``. ``tests/test_eval_prompts.py`` pins the strings.

Quirks kept on purpose, because scores depend on them:

* Video-MME without subtitles still says "based on the video and the subtitles", and the
  default post prompt starts with a newline, so a blank line precedes it.
* Video-MME *with* subtitles always ends in "The best answer is:" whatever the variant
  (lmms-eval hard-codes it there). The subtitle block is put in as given: lmms-eval writes
  "No subtitles available" (:data:`VIDEOMME_NO_SUBTITLES`) only when the video has no
  subtitle file, and an empty block when the file has no line on the sampled frames; the
  caller (:mod:`vidsieve.eval.subtitles`, the runner) decides which.
* LongVideoBench's post prompt ends in a newline.

Variants are named; a run records the one it used (``run.json``).
"""

from __future__ import annotations

from collections.abc import Sequence

from vidsieve.errors import ParameterError

VIDEOMME_OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and "
    "the subtitles. Respond with only the letter (A, B, C, or D) of the correct option."
)
VIDEOMME_SUBTITLE_PREFIX = "This video's subtitles are listed below: \n"
VIDEOMME_NO_SUBTITLES = "No subtitles available"
VIDEOMME_SUBTITLE_POST = "The best answer is:"

#: post prompt per lmms-eval model family (``lmms_eval_specific_kwargs`` of videomme.yaml).
VIDEOMME_VARIANTS: dict[str, dict[str, str]] = {
    "lmms-eval": {"post_prompt": "\nAnswer with the option's letter from the given choices directly."},
    "llava_vid": {"post_prompt": "The best answer is:"},
    "gpt4v": {"post_prompt": "Answer the question with A, B, C, or D."},
    "qwen3_vl": {"format": "qwen3_vl", "pre_prompt": "Question: ", "post_prompt": "Answer with the option letter only."},
}

LVB_POST_PROMPT = "Answer with the option's letter from the given choices directly.\n"
#: LongVideoBench variants. lmms-eval's ``longvideobench_val_v`` has no subtitle text; with
#: subtitles on, vidsieve prefixes them as Video-MME does (named "subtitle-prefix").
LVB_VARIANTS: dict[str, dict[str, str]] = {
    "lmms-eval": {"pre_prompt": "", "post_prompt": LVB_POST_PROMPT},
}


def _variant(table: dict[str, dict[str, str]], name: str, bench: str) -> dict[str, str]:
    try:
        return table[name]
    except KeyError:
        raise ParameterError(
            f"Unknown {bench} prompt variant {name!r}. Available: {', '.join(sorted(table))}."
        ) from None


def videomme_prompt(
    question: str,
    options: Sequence[str],
    *,
    subtitles: str | None = None,
    variant: str = "lmms-eval",
) -> str:
    """The Video-MME prompt. ``options`` already carry letters ("A. Apples.").

    subtitles: None for the no-subtitle task; for the ``videomme_w_subtitle`` task the
               subtitle block, put in as given (lines joined with newlines; may be empty, or
               :data:`VIDEOMME_NO_SUBTITLES`).
    """
    v = _variant(VIDEOMME_VARIANTS, variant, "Video-MME")
    option = "\n".join(f"{opt}" for opt in options)
    if v.get("format") == "qwen3_vl":
        body = f"{v.get('pre_prompt', '')}{question}\nOptions:\n{option}\n{v.get('post_prompt', '')}"
        if subtitles is None:
            return body
        return VIDEOMME_SUBTITLE_PREFIX + subtitles + "\n" + body
    q = question + "\n" + option
    if subtitles is None:
        return VIDEOMME_OPTION_PROMPT + "\n" + q + "\n" + v["post_prompt"]
    return (
        VIDEOMME_SUBTITLE_PREFIX + subtitles + "\n" + VIDEOMME_OPTION_PROMPT
        + "\n" + q + "\n" + VIDEOMME_SUBTITLE_POST
    )


def lvb_options(candidates: Sequence[str]) -> list[str]:
    """``["A. first", "B. second", ...]`` as lmms-eval letters LongVideoBench candidates."""
    return [". ".join([chr(ord("A") + i), c]) for i, c in enumerate(candidates)]


def longvideobench_prompt(
    question: str,
    candidates: Sequence[str],
    *,
    subtitles: str | None = None,
    variant: str = "lmms-eval",
) -> str:
    """The LongVideoBench prompt (``candidates`` without letters, "N/A" already removed)."""
    v = _variant(LVB_VARIANTS, variant, "LongVideoBench")
    q = question + "\n" + "\n".join(lvb_options(candidates))
    text = f"{v['pre_prompt']}{q}\n{v['post_prompt']}"
    if subtitles is None:
        return text
    return VIDEOMME_SUBTITLE_PREFIX + subtitles + "\n" + text


PROMPT_VARIANTS = {"videomme": sorted(VIDEOMME_VARIANTS), "longvideobench": sorted(LVB_VARIANTS)}
