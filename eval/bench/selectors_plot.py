"""Outputs of ``vidsieve bench selectors`` for people: the plot, the text table, verdicts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .selectors_config import BASELINE


def plot_title(meta: dict[str, Any]) -> str:
    return (f"vidsieve bench selectors: {meta['videos']} synthetic videos x {meta['minutes']} min "
            f"({meta.get('styles', 'flat')}), "
            f"{meta['cand_fps']} fps candidates, encoder {meta['encoder']}, tolerance {meta['tolerance_s']} s, "
            f"seed {meta['seed']}, commit {meta['commit']}")


_PANELS = (
    ("coverage", "scene coverage (distinct looks; bars: 95 % CI over videos)", False),
    ("coverage_occ", "scene coverage (occurrences)", False),
    ("needle_recall", "needle temporal recall", False),
    ("needle_f1", "needle temporal F1", False),
    ("redundancy", "redundancy (mean pairwise cos, lower = better)", False),
    ("select_s_per_hour", "selection s per video-hour (log)", True),
)


def plot_summary(summary: list[dict[str, Any]], path: Path, title: str = "",
                 real: list[dict[str, Any]] | None = None) -> Path:
    """One panel per metric (metric vs budget, one line per selector; uniform dashed black),
    95 % intervals over videos as error bars where the summary has them, and with ``real`` rows a
    last panel of scene coverage on the real offline clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["selector"] for r in summary))
    budgets = sorted({int(r["budget"]) for r in summary})
    # tab10 first (most distinct), then the light tab20 shades; uniform is drawn first, thick
    # and dashed, so selectors that coincide with it stay visible on top of it.
    palette = [plt.get_cmap("tab10")(i) for i in range(10)] + [plt.get_cmap("tab20")(2 * i + 1) for i in range(10)]
    markers = "osD^v<>pPXh*"
    others = [n for n in names if n != BASELINE]
    order = ([BASELINE] if BASELINE in names else []) + others
    panels = [(summary, m, label, logy) for m, label, logy in _PANELS]
    if real:
        panels.append((real, "coverage_occ", "REAL clips (TransNetV2 shots): scene coverage", False))
    cols = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(2, cols, figsize=(5.4 * cols, 9.5), dpi=110)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, (rows_of, m, label, logy) in zip(axes.ravel(), panels):
        for n in order:
            pts = [(int(r["budget"]), float(r[m]), float(r.get(f"{m}_ci_lo", math.nan)),
                    float(r.get(f"{m}_ci_hi", math.nan))) for r in rows_of if r["selector"] == n]
            pts = [p for p in sorted(pts) if np.isfinite(p[1]) and (not logy or p[1] > 0)]
            if not pts:
                continue
            xs, ys, lo, hi = (np.asarray(c) for c in zip(*pts))
            j = order.index(n)
            if n == BASELINE:
                color: Any = "0.15"
                ax.plot(xs, ys, color=color, ls="--", lw=3.2, marker="o", ms=7, label=n, zorder=1)
            else:
                i = others.index(n)
                color = palette[i % len(palette)]
                ax.plot(xs, ys, color=color, lw=1.7, marker=markers[i % len(markers)], ms=5, label=n, zorder=2)
            band = np.isfinite(lo) & np.isfinite(hi)
            if band.any():  # 95 % intervals as error bars, nudged sideways per selector (log-2 x axis)
                xj = xs[band] * 2.0 ** ((j - (len(order) - 1) / 2) * 0.02)
                ax.errorbar(xj, ys[band], yerr=[ys[band] - lo[band], hi[band] - ys[band]], fmt="none",
                            ecolor=color, elinewidth=0.9, capsize=2, alpha=0.55, zorder=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
        ax.set_xlabel("frame budget")
        ax.set_title(label, fontsize=11)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    for ax in axes.ravel()[1 : len(panels)]:  # a selector may be missing from the first panel (errors)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=10, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03 + 0.035 * math.ceil(len(labels) / 7), 1, 0.96))
    fig.savefig(path)
    plt.close(fig)
    return path


def format_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a fixed-width text table (k_out = mean frames returned by the query-free
    call; x_uni = ratio to uniform at the same budget; a '+'/'-' after a ratio marks a paired
    difference beyond two standard errors)."""
    cols = [("selector", "selector", "s"), ("budget", "k", "d"), ("k_chosen", "k_out", ".1f"),
            ("coverage", "cover", ".3f"),
            ("coverage_vs_uniform", "x_uni", "r"), ("coverage_occ", "occ", ".3f"),
            ("needle_recall", "recall", ".3f"), ("needle_recall_vs_uniform", "x_uni", "r"),
            ("needle_f1", "F1", ".3f"), ("needle_f1_vs_uniform", "x_uni", "r"),
            ("needle_hit", "hit", ".3f"), ("redundancy", "redund", ".3f"),
            ("select_s_per_hour", "s/hour", ".3g"), ("errors", "err", "d")]
    verdict_of = {"coverage_vs_uniform": "coverage_verdict", "needle_recall_vs_uniform": "needle_recall_verdict",
                  "needle_f1_vs_uniform": "needle_f1_verdict"}
    width = max([len(str(r["selector"])) for r in summary] + [8])
    lines = []
    head = []
    for key, h, _ in cols:
        head.append(f"{h:<{width}}" if key == "selector" else f"{h:>7}")
    lines.append(" ".join(head))
    prev_b = None
    for r in summary:
        if prev_b is not None and r["budget"] != prev_b:
            lines.append("")
        prev_b = r["budget"]
        cells = []
        for key, _, f in cols:
            v = r.get(key)
            if key == "selector":
                cells.append(f"{v:<{width}}")
            elif f == "r":
                mark = {"better": "+", "worse": "-"}.get(r.get(verdict_of[key], ""), " ")
                shown = f"{v:>6.2f}" if isinstance(v, float) and not math.isnan(v) else f"{'-':>6}"
                cells.append(shown + mark)
            elif isinstance(v, float) and not np.isfinite(v):
                cells.append(f"{'-':>7}")
            else:
                cells.append(f"{v:>7{f}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def verdict_lines(summary: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per selector: where it beats, matches or loses to uniform."""
    out = []
    names = list(dict.fromkeys(r["selector"] for r in summary))
    for n in names:
        if n == BASELINE:
            continue
        rows = [r for r in summary if r["selector"] == n]
        parts = []
        for m, label in (("coverage", "coverage"), ("needle_recall", "needle recall")):
            groups: dict[str, list[str]] = {}
            for r in rows:
                groups.setdefault(r[f"{m}_verdict"], []).append(str(r["budget"]))
            parts.append(f"{label}: " + ", ".join(
                f"{v} than uniform at k={'/'.join(bs)}" if v in ("better", "worse") else f"{v} at k={'/'.join(bs)}"
                for v, bs in groups.items()))
        errs = sum(int(r["errors"]) for r in rows)
        tail = f"; {errs} error rows ({rows[0]['first_error'] or next((r['first_error'] for r in rows if r['first_error']), '')})" if errs else ""
        note = next((r["notes"] for r in rows if r.get("notes")), "")
        out.append(f"{n}: " + "; ".join(parts) + tail + (f"\n    note from the selector: {note}" if note else ""))
    return out
