"""Prompt snapshots: the exact strings lmms-eval 0.7.3 builds (tasks/videomme/utils.py,
videomme.yaml, tasks/longvideobench/utils.py, longvideobench_val_v.yaml)."""

from __future__ import annotations

import pytest
from vidsieve.eval.prompts import VIDEOMME_NO_SUBTITLES, longvideobench_prompt, videomme_prompt

from vidsieve.errors import ParameterError

OPTS = ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."]
Q = "What is the most frequent object in the video?"

VIDEOMME_DEFAULT = (
    "Select the best answer to the following multiple-choice question based on the video and the "
    "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\n"
    "What is the most frequent object in the video?\n"
    "A. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
    "\nAnswer with the option's letter from the given choices directly."
)

VIDEOMME_SUBS = (
    "This video's subtitles are listed below: \n"
    "hello there\nsecond line\n"
    "Select the best answer to the following multiple-choice question based on the video and the "
    "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\n"
    "What is the most frequent object in the video?\n"
    "A. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
    "The best answer is:"
)


def test_videomme_default_prompt_snapshot() -> None:
    assert videomme_prompt(Q, OPTS) == VIDEOMME_DEFAULT


def test_videomme_subtitle_prompt_snapshot() -> None:
    assert videomme_prompt(Q, OPTS, subtitles="hello there\nsecond line") == VIDEOMME_SUBS


def test_videomme_subtitle_block_is_put_in_as_given() -> None:
    # lmms-eval: an .srt with no line on the sampled frames gives an empty block ...
    p = videomme_prompt(Q, OPTS, subtitles="")
    assert p.startswith("This video's subtitles are listed below: \n\nSelect the best")
    # ... and "No subtitles available" only when there is no subtitle file
    p = videomme_prompt(Q, OPTS, subtitles=VIDEOMME_NO_SUBTITLES)
    assert p.startswith("This video's subtitles are listed below: \nNo subtitles available\nSelect the best")


def test_videomme_variants() -> None:
    assert videomme_prompt(Q, OPTS, variant="llava_vid").endswith(
        "D. The three kinds are of the same number.\nThe best answer is:"
    )
    assert videomme_prompt(Q, OPTS, variant="qwen3_vl") == (
        "Question: What is the most frequent object in the video?\nOptions:\n"
        "A. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
        "Answer with the option letter only."
    )
    with pytest.raises(ParameterError, match="Unknown Video-MME prompt variant 'nope'.*lmms-eval"):
        videomme_prompt(Q, OPTS, variant="nope")


def test_longvideobench_prompt_snapshot() -> None:
    p = longvideobench_prompt("What colour is the car?", ["red", "blue", "green", "grey", "white"])
    assert p == (
        "What colour is the car?\nA. red\nB. blue\nC. green\nD. grey\nE. white\n"
        "Answer with the option's letter from the given choices directly.\n"
    )


def test_longvideobench_subtitle_prefix() -> None:
    p = longvideobench_prompt("Q?", ["x", "y"], subtitles="line one")
    assert p == (
        "This video's subtitles are listed below: \nline one\nQ?\nA. x\nB. y\n"
        "Answer with the option's letter from the given choices directly.\n"
    )
