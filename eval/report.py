"""Reports: one run (``report.html`` + ``report.png``) and a comparison of runs.

``vidsieve eval report runs/A runs/B ...`` prints a table (one line per run: benchmark,
model, frame/token selector, budgets, accuracy, unparsed, errors, mean tokens fed, time per
question with and without per-video reuse) and writes ``report.html``, ``report.csv`` and one
accuracy-vs-token-budget plot per benchmark (a line per selector pair).
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from .questions import DatasetError
from .runner import atomic_write


def _load(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    mp, rp = run / "metrics.json", run / "run.json"
    for p in (mp, rp):
        if not p.exists():
            raise DatasetError(f"{run} is not a finished vidsieve eval run: {p.name} is missing.")
    return json.loads(mp.read_text(encoding="utf-8")), json.loads(rp.read_text(encoding="utf-8"))


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table_html(header: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


_CSS = (
    "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style>"
)


def _save_png(fig: Any, path: Path) -> None:
    """Render ``fig`` in memory, then write it atomically (a full disk never leaves half a PNG)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(path, buf.getvalue())


def write_run_report(run: str | Path) -> Path:
    """``report.html`` (+ ``report.png``: accuracy per group) for one finished run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    m, r = _load(run)
    cfg = r.get("config", {})
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(run.name)}</title>{_CSS}</head><body>"]
    parts.append(f"<h1>{html.escape(m['benchmark'])}: {html.escape(run.name)}</h1>")
    summary = [
        ["model", cfg.get("model")], ["frames", cfg.get("frames")], ["tokens", cfg.get("tokens")],
        ["budget (frames / tokens)", f"{cfg.get('budget_frames')} / {cfg.get('budget_tokens')}"],
        ["subtitles", f"{cfg.get('subtitles')} ({cfg.get('subtitle_rule')})"],
        ["parser / prompt", f"{cfg.get('parser')} / {cfg.get('prompt')}"],
        ["questions", m["n"]], ["accuracy (unparsed = wrong)", m["accuracy"]],
        ["accuracy (seeded random)", m["conventions"]["seeded_random"]["accuracy"]],
        *([["accuracy (lmms-eval global random stream)", m["conventions"]["lmms_eval_global_random"]["accuracy"]]]
          if "lmms_eval_global_random" in m["conventions"] else []),
        ["unparsed", m["unparsed"]], ["errors", m["errors"]],
        ["mean frames / visual tokens fed", f"{_fmt(m['fed']['mean_frames'])} / {_fmt(m['fed']['mean_visual_tokens'])}"],
        ["s per question (no reuse / reuse)",
         f"{_fmt(m['timing']['mean_total_s_without_reuse'], 4)} / {_fmt(m['timing']['mean_total_s_with_reuse'], 4)}"],
        ["commit", r.get("commit")],
    ]
    parts.append(_table_html(["", "value"], summary))
    by = m.get("by", {})
    keys = list(by)
    for key in keys:
        parts.append(f"<h2>by {html.escape(key)}</h2>")
        parts.append(_table_html([key, "n", "correct", "accuracy"],
                                 [[v, s["n"], s["correct"], s["accuracy"]] for v, s in by[key].items()]))
    png = run / "report.png"
    if keys:
        key = keys[0]
        vals = list(by[key].items())
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(vals) + 2), 3.2))
        ax.bar([str(v) for v, _ in vals], [s["accuracy"] or 0.0 for _, s in vals], color="#4c72b0")
        ax.axhline(m["accuracy"] or 0.0, color="k", ls="--", lw=1, label=f"overall {_fmt(m['accuracy'])}")
        ax.set_ylabel("accuracy (%)")
        ax.set_xlabel(key)
        ax.set_ylim(0, 100)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{m['benchmark']} - {run.name}", fontsize=9)
        fig.tight_layout()
        _save_png(fig, png)
        plt.close(fig)
        parts.append("<img src='report.png'>")
    parts.append("</body></html>")
    out = run / "report.html"
    atomic_write(out, "\n".join(parts))
    return out


COMPARE_HEADER = [
    "run", "benchmark", "model", "frames", "tokens", "budget_frames", "budget_tokens", "subtitles",
    "parser", "n", "accuracy", "acc_seeded_random", "unparsed", "errors", "mean_visual_tokens",
    "s_per_q_no_reuse", "s_per_q_reuse",
]


def compare_rows(runs: list[Path]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        m, r = _load(run)
        c = r.get("config", {})
        out.append({
            "run": str(run), "benchmark": m["benchmark"], "model": c.get("model"),
            "frames": c.get("frames"), "tokens": c.get("tokens"),
            "budget_frames": c.get("budget_frames"), "budget_tokens": c.get("budget_tokens"),
            "subtitles": c.get("subtitles"), "parser": c.get("parser"), "n": m["n"],
            "accuracy": m["accuracy"], "acc_seeded_random": m["conventions"]["seeded_random"]["accuracy"],
            "unparsed": m["unparsed"], "errors": m["errors"],
            "mean_visual_tokens": m["fed"]["mean_visual_tokens"],
            "s_per_q_no_reuse": m["timing"]["mean_total_s_without_reuse"],
            "s_per_q_reuse": m["timing"]["mean_total_s_with_reuse"],
        })
    return out


def format_table(rows: list[dict[str, Any]], cols: list[str] | None = None) -> str:
    cols = cols or ["run", "benchmark", "frames", "tokens", "budget_frames", "budget_tokens", "n",
                    "accuracy", "unparsed", "errors", "mean_visual_tokens", "s_per_q_no_reuse", "s_per_q_reuse"]
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def compare_runs(runs: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Table + accuracy-vs-token-budget plots of several finished runs, written to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [Path(r) for r in runs]
    rows = compare_rows(paths)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COMPARE_HEADER)
    w.writeheader()
    w.writerows(rows)
    atomic_write(outp / "report.csv", buf.getvalue())
    plots = []
    for bench in sorted({r["benchmark"] for r in rows}):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        sel: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r["benchmark"] != bench or r["accuracy"] is None:
                continue
            x = r["budget_tokens"] or r["mean_visual_tokens"]
            if x is None:
                continue
            label = f"{r['frames']} + {r['tokens'] or 'all tokens'}"
            sel.setdefault(label, []).append((float(x), float(r["accuracy"])))
        for label, pts in sorted(sel.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel("visual-token budget (LLM tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
        if sel:
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = outp / f"accuracy_vs_tokens_{bench}.png"
        _save_png(fig, p)
        plt.close(fig)
        plots.append(p)
    body = _table_html(COMPARE_HEADER, [[r[c] for c in COMPARE_HEADER] for r in rows])
    imgs = "".join(f"<img src='{p.name}'>" for p in plots)
    atomic_write(
        outp / "report.html",
        f"<html><head><meta charset='utf-8'><title>vidsieve eval report</title>{_CSS}</head><body>"
        f"<h1>vidsieve eval report</h1>{body}{imgs}</body></html>",
    )
    return {"rows": rows, "plots": plots, "table": format_table(rows), "out": outp}
