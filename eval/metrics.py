"""Accuracy and breakdowns from result rows (pure functions of the rows).

Accuracies are percentages over *all* questions of the run: an unparsed answer and an error
row (missing/corrupt video) both count as wrong under "unparsed=wrong".

LongVideoBench's convention (its paper, lmms-eval's LVB task) replaces each unparsed answer by
a random option letter. Two versions are reported, error rows staying wrong in both:

``seeded_random``            vidsieve's: one seeded draw per question
                             (:func:`~vidsieve.eval.parsers.seeded_random_choice`), so the
                             number is the same under sharding, resuming and ``--limit``.
``lmms_eval_global_random``  lmms-eval's: Python's ``random`` seeded once with the run's seed
                             (lmms-eval's default ``--seed`` seeds it with 0), then one
                             ``random.choice`` per unparsed answer in annotation order. This is
                             the number lmms-eval prints when nothing else drew from its global
                             stream in between; compare it with lmms-eval's output.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from statistics import mean
from typing import Any

from .parsers import seeded_random_choice

#: breakdown keys per benchmark, in display order; value orders for known groups.
GROUP_KEYS = {
    "videomme": ("duration", "domain", "sub_category", "task_type"),
    "longvideobench": ("duration_group", "question_category"),
}
_ORDER = {"duration": ["short", "medium", "long"], "duration_group": ["15", "60", "600", "3600"]}


def _acc(flags: Sequence[bool]) -> dict[str, Any]:
    n = len(flags)
    c = int(sum(flags))
    return {"n": n, "correct": c, "accuracy": round(100.0 * c / n, 4) if n else None}


def _sorted_values(key: str, values: Iterable[str]) -> list[str]:
    vals = sorted(set(values))
    order = _ORDER.get(key)
    if order:
        return [v for v in order if v in vals] + [v for v in vals if v not in order]
    return vals


def random_fallback_correct(row: dict[str, Any], seed: int) -> bool:
    """Correctness under the seeded-random convention."""
    if row.get("error"):
        return False
    if not row.get("unparsed"):
        return bool(row.get("correct"))
    letters = row.get("letters") or []
    return seeded_random_choice(str(row["id"]), letters, seed) == row.get("answer")


def global_stream_random_correct(rows: Sequence[dict[str, Any]], seed: int) -> list[bool]:
    """Correctness under lmms-eval's global-stream fallback (module docstring), computed on a
    private ``random.Random(seed)``: the process's own ``random`` state is left untouched."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row.get("error"):
            out.append(False)
        elif not row.get("unparsed"):
            out.append(bool(row.get("correct")))
        else:
            letters = list(row.get("letters") or [])
            out.append(bool(letters) and rng.choice(letters) == row.get("answer"))
    return out


def _breakdown(rows: Sequence[dict[str, Any]], keys: Sequence[str], flags: Sequence[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        values = [str(r.get("groups", {}).get(key, "")) for r in rows]
        out[key] = {
            v: _acc([f for f, rv in zip(flags, values) if rv == v]) for v in _sorted_values(key, values)
        }
    return out


def _mean(xs: Iterable[Any]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return round(mean(vals), 6) if vals else None


def _peak(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Largest peak memory a question reported (CUDA max allocated, or process max RSS)."""
    vals: list[int] = []
    kinds: set[str] = set()
    for r in rows:
        ex = r.get("extras") or {}
        if ex.get("peak_memory_bytes") is not None:
            vals.append(int(ex["peak_memory_bytes"]))
            kinds.add(str(ex.get("peak_memory_kind") or ""))
    return {"max_bytes": max(vals), "kind": ",".join(sorted(kinds))} if vals else None


def compute_metrics(rows: Sequence[dict[str, Any]], *, benchmark: str, seed: int = 0) -> dict[str, Any]:
    """Overall and per-group accuracy, unparsed/error counts, fed sizes and timings."""
    keys = GROUP_KEYS.get(benchmark, ())
    strict = [bool(r.get("correct")) and not r.get("error") for r in rows]
    rnd = [random_fallback_correct(r, seed) for r in rows]
    ok = [r for r in rows if not r.get("error")]
    first = [r for r in ok if not r.get("reused")]
    reused = [r for r in ok if r.get("reused")]
    t = lambda rs, k: _mean(r.get("timings", {}).get(k) for r in rs)  # noqa: E731
    metrics: dict[str, Any] = {
        "benchmark": benchmark,
        "n": len(rows),
        "accuracy": _acc(strict)["accuracy"],
        "correct": int(sum(strict)),
        "errors": sum(1 for r in rows if r.get("error")),
        "unparsed": sum(1 for r in rows if r.get("unparsed") and not r.get("error")),
        "by": _breakdown(rows, keys, strict),
        "conventions": {
            "unparsed_wrong": {"accuracy": _acc(strict)["accuracy"], "by": _breakdown(rows, keys, strict)},
            "seeded_random": {
                "accuracy": _acc(rnd)["accuracy"], "seed": seed, "by": _breakdown(rows, keys, rnd),
            },
        },
        "fed": {
            "mean_frames": _mean(r.get("num_frames") for r in ok),
            "mean_visual_tokens": _mean(r.get("visual_tokens") for r in ok),
            "mean_input_tokens": _mean(r.get("input_tokens") for r in ok),
        },
        "peak_memory": _peak(ok),
        "timing": {
            "mean_total_s": t(ok, "total"),
            "mean_prefill_s": t(ok, "prefill"),
            "mean_total_s_without_reuse": t(first, "total"),
            "mean_total_s_with_reuse": t(reused, "total"),
            "questions_without_reuse": len(first),
            "questions_with_reuse": len(reused),
        },
    }
    if benchmark == "longvideobench":
        glob = global_stream_random_correct(rows, seed)
        metrics["conventions"]["lmms_eval_global_random"] = {
            "accuracy": _acc(glob)["accuracy"], "seed": seed, "by": _breakdown(rows, keys, glob),
        }
        metrics["accuracy_seeded_random"] = metrics["conventions"]["seeded_random"]["accuracy"]
        metrics["accuracy_lmms_eval_global_random"] = metrics["conventions"]["lmms_eval_global_random"]["accuracy"]
    return metrics
