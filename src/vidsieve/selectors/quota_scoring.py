"""QuoTA's frame scoring: scorer interface, prompts, and CoT query decoupling.

Source: "QuoTA: Query-oriented Token Assignment via CoT Query Decouple for Long Video
Comprehension" (arXiv 2503.08689) and the authors' released code (github.com/MAC-AutoML/QuoTA:
``quota_pipeline.py``, ``tools/qwen2vl_batch.py``).

* :class:`FrameScorer` is the interface the selector calls: ``score(features, rows, objects=,
  query=) -> p`` with ``p`` float64 ``[len(rows)]`` in ``[0, 1]``.
* :class:`SimilarityScorer` (the default) needs no model: it maps the cosine between each
  frame and the query embedding (same encoder) to ``p``.
* :class:`YesNoScorer` is the released VLM protocol: it builds the yes/no prompt
  (:func:`scoring_prompt`) and asks a callable for ``p("A")`` per frame. The released scorer
  is Qwen2-VL-2B: per frame, softmax of the last position's logits, probability of token "A".
  HF adapters supply that callable; vidsieve has no weights here.
* :func:`decouple_query` runs the released 3-step CoT prompt through a text-only
  ``generate`` callable (the LVLM itself) and parses the object list.

The prompt texts are the released ones, character for character (including the examples'
spelling "ballons" and the 4-space indentation), so a model sees what the authors' model saw;
they are pinned by tests. The parser is vidsieve's: the released one lower-cases the output,
matches ``step 1: (yes|no)`` and ``step 3: [...]`` and ``eval``s the list; vidsieve parses the
list with :func:`ast.literal_eval` (never ``eval``) and returns None for "no", "null", a
missing or unparsable list, or an empty list (the released script then has an undefined name;
its intent, scoring with the fallback prompt, is what None means here).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..configurable import Configurable
from ..errors import ParameterError
from ..params import Choice
from ..relevance import query_relevance
from ..types import FrameFeatures, Query

#: the released suffix of both scoring prompts.
ANSWER_SUFFIX = "\nAnswer with the option's letter directly."

#: the released CoT decoupling instructions, appended to the question (quota_pipeline.py).
DECOUPLE_INSTRUCTIONS = '''
To answer this question, please follow the following step to give an object list for object detection.
    Step 1: Do you think it is necessary to detect specific physical entities in the video? Please only answer "yes" or "no" in this step.
    Step 2: If 'yes' in previous step, then what object in the video do you think needs to be detected to answer this question? Please only output the name of all the objects need to detect in the form of a Python list without other information.
    Step 3: Filter the object list provided in step 2, make sure they are physical entities, not abstract concepts. Please only output the name of the filtered object in the form of a Python list without other information. If all the words being filtered, please only output null.
    # Example 1:
    Question: How many blue balloons are over the long table in the middle of the room at the end of this video? A. 1. B. 2. C. 3. D. 4.
    Your output should be:
    Step 1: yes
    Step 2: ["blue ballons", "long table", "video", "blue"]
    Step 3: ["blue ballons", "long table"]
    # Example 2:
    Question: In the lower left corner of the video, what color is the woman wearing on the right side of the man in black clothes? A. Blue. B. White. C. Red. D. Yellow.
    Your output should be:
    Step 1: yes
    Step 2: ["the man in black", "woman", "lower left corner"]
    Step 3: ["the man in black", "woman"]
    # Example 3:
    Question: In which country is the comedy featured in the video recognized worldwide? A. China. B. UK. C. Germany. D. United States.
    Your output should be:
    Step 1: no'''

_STEP1 = re.compile(r"step 1: (yes|no)")
_STEP3 = re.compile(r"step 3: (\[[^\]]*\])")


def object_prompt(objects: Sequence[str]) -> str:
    """The released per-frame question when the CoT step found objects."""
    if not objects:
        raise ParameterError("object_prompt needs at least one object; use sufficiency_prompt.")
    return "Does the image contain any object of " + ", ".join(objects) + "? A. yes, B. no" + ANSWER_SUFFIX


def sufficiency_prompt(question: str) -> str:
    """The released per-frame question when there are no objects (the fallback)."""
    return f"{question}\nDoes the image contain sufficient information to answer the given question? A. yes, B. no" + ANSWER_SUFFIX


def scoring_prompt(objects: Sequence[str] | None, question: str) -> str:
    """:func:`object_prompt` if there are objects, else :func:`sufficiency_prompt`."""
    return object_prompt(objects) if objects else sufficiency_prompt(question)


def decoupling_prompt(question: str) -> str:
    """The released 3-step CoT prompt: the question followed by the instructions."""
    return question + DECOUPLE_INSTRUCTIONS


def parse_decoupling(output: str) -> list[str] | None:
    """The object list from a model's answer to :func:`decoupling_prompt`, or None.

    Lower-cases the output (as released), requires ``step 1: yes`` and a ``step 3: [...]``
    Python list of strings. "no", "null", a missing/unparsable/empty list give None.
    """
    text = output.lower()
    m1 = _STEP1.search(text)
    if m1 is None or m1.group(1) != "yes":
        return None
    m3 = _STEP3.search(text)
    if m3 is None:
        return None
    try:
        value = ast.literal_eval(m3.group(1))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    objects = [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return objects or None


def decouple_query(question: str, generate: Callable[[str], str]) -> list[str] | None:
    """CoT query decoupling: ask ``generate`` (text in, text out) and parse its object list."""
    return parse_decoupling(generate(decoupling_prompt(question)))


@runtime_checkable
class FrameScorer(Protocol):
    """Scores how well each candidate frame answers the query, as a probability-like ``p``."""

    def score(
        self, features: FrameFeatures, rows: np.ndarray, *, objects: list[str] | None, query: Query | None
    ) -> np.ndarray:
        """float64 ``[len(rows)]`` in ``[0, 1]`` for the candidate frames at ``rows``.

        ``features.indices[rows]`` are the source frame indices (a VLM scorer decodes them).
        ``objects`` is the CoT object list or None; ``query`` the user's query or None.
        """
        ...  # pragma: no cover - interface


class SimilarityScorer(Configurable):
    """The training-free substitute: image-text cosine from the frame encoder, mapped to ``p``.

    ``mapping`` turns ``c = cos(frame, query)`` into ``p``:

    * ``"relu"`` (default): ``p = max(c, 0)``; weights become ``(100 c)^2`` for frames
      pointing toward the query; frames at or below zero cosine get ``p = 0`` (dropped).
    * ``"affine"``: ``p = (1 + c) / 2`` (all of ``[-1, 1]`` onto ``[0, 1]``; gentle).
    * ``"minmax"``: ``p = (c - min) / (max - min)`` over the scored frames (sharpest, like a
      decisive yes/no scorer; the least relevant frame gets 0).

    Without a query embedding every frame gets ``p = 1`` (equal weights). ``objects`` are
    ignored (the frame encoder embedded the whole query).
    """

    _parameter_constraints = {"mapping": [Choice("relu", "affine", "minmax")]}

    def __init__(self, *, mapping: str = "relu") -> None:
        self.mapping = mapping
        self._validate_params()

    def score(
        self, features: FrameFeatures, rows: np.ndarray, *, objects: list[str] | None, query: Query | None
    ) -> np.ndarray:
        rel = query_relevance(features.subset(rows), query)
        if rel is None:
            return np.ones(len(rows), dtype=np.float64)
        if self.mapping == "relu":
            return np.clip(rel, 0.0, 1.0)
        if self.mapping == "affine":
            return np.clip((1.0 + rel) / 2.0, 0.0, 1.0)
        lo, hi = float(rel.min()), float(rel.max())
        return (rel - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones_like(rel)


class YesNoScorer:
    """The released VLM protocol: ``p = P("A")`` for the yes/no question of each frame.

    ask: ``ask(features, rows, prompt) -> p`` float ``[len(rows)]``: the VLM's softmax
        probability of the answer token "A" at the last position, one frame per request
        (released: Qwen2-VL-2B, batches of 64, ``max_pixels = 1280*28*28``). The HF adapters
        implement it; tests use a fake.
    The prompt is :func:`scoring_prompt` of the CoT objects (or the query text).
    """

    def __init__(self, ask: Callable[[FrameFeatures, np.ndarray, str], np.ndarray]) -> None:
        self.ask = ask

    def __repr__(self) -> str:
        return f"YesNoScorer(ask={self.ask!r})"

    def score(
        self, features: FrameFeatures, rows: np.ndarray, *, objects: list[str] | None, query: Query | None
    ) -> np.ndarray:
        question = "" if query is None or query.text is None else query.text
        if not objects and not question:
            raise ParameterError("YesNoScorer needs a text query or CoT objects to build its prompt.")
        p = np.asarray(self.ask(features, rows, scoring_prompt(objects, question)), dtype=np.float64)
        if p.shape != (len(rows),) or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
            raise ParameterError(
                f"The scorer's ask() must return {len(rows)} probabilities in [0, 1]; got shape {p.shape}."
            )
        return p
