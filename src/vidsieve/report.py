"""The ``compare`` report: ``report.html`` (one self-contained page), ``report.png`` (the same
picture, see :mod:`.report_png`) and ``selections.json`` (everything, full texts included).

Texts that come from the user or from errors (query, path, parameters, messages) are bounded
in the page and the picture (:func:`.textfit.ellipsise`); ``selections.json`` keeps them whole.
The three files are written all or nothing: each is rendered and written to a temporary file
first and only renamed into place once all three are on disk.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .report_png import render_png
from .textfit import ellipsise

if TYPE_CHECKING:
    from .compare import CompareResult

__all__ = ["render_html", "render_png", "write_report"]

#: longest query / path / parameter / error text shown in the page (characters)
TEXT_LIMIT = 300

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _jpeg_b64(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode()


def frame_label(sel, j: int) -> str:  # type: ignore[no-untyped-def]
    """``"1.20s · 98tok · /2"``: a chosen frame's time, token allotment and downscale."""
    lab = f"{sel.timestamps[j]:.2f}s"
    if sel.frame_tokens is not None:
        lab += f" · {int(sel.frame_tokens[j])}tok"
    if sel.downscale is not None and float(sel.downscale[j]) != 1.0:
        lab += f" · /{float(sel.downscale[j]):.2g}"
    return lab


def token_overlays(result: CompareResult) -> dict[str, list[np.ndarray]]:
    """Per token selector: kept-token heat-maps over the thumbnails of its frames."""
    if not result.token_selections:
        return {}
    from .tokens.viz import token_heatmap

    base = result.selections[result.token_frames]
    out: dict[str, list[np.ndarray]] = {}
    for name, ts in result.token_selections.items():
        out[name] = [
            token_heatmap(result.thumbs[int(idx)], ts, f, ts.grid) for f, idx in enumerate(base.indices)
        ]
    return out


def _timeline_svg(result: CompareResult, width: int = 900) -> str:
    names = list(result.selections)
    lane, left = 22, 150
    h = lane * len(names) + 30
    dur = max(result.meta.duration, 1e-6)
    sx = (width - left - 10) / dur
    parts = [f'<svg width="{width}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">']
    for r, n in enumerate(names):
        s = result.selections[n]
        y = 10 + r * lane
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{html.escape(n)}</text>')
        parts.append(f'<line x1="{left}" y1="{y + 10}" x2="{width - 10}" y2="{y + 10}" stroke="#ddd"/>')
        for t in s.timestamps:
            x = left + float(t) * sx
            parts.append(f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" y2="{y + 18}" stroke="{_color(r)}" stroke-width="2"><title>{t:.2f}s</title></line>')
    ya = 10 + len(names) * lane
    for k in range(6):
        t = dur * k / 5
        x = left + t * sx
        parts.append(f'<text x="{x:.1f}" y="{ya + 12}" text-anchor="middle" fill="#555">{t:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: CompareResult, png: bytes | None = None) -> str:
    """A self-contained page: stage times, timeline, one row of thumbnails per selector."""
    from .registry import FRAME_SELECTORS

    m = result.meta
    def esc(text: object, limit: int = TEXT_LIMIT) -> str:
        return html.escape(ellipsise(str(text), limit))

    rows = []
    for n, s in result.selections.items():
        cells = "".join(
            f'<figure><img src="data:image/jpeg;base64,{_jpeg_b64(result.thumbs[int(i)])}" '
            f'alt="frame {int(i)}"><figcaption>{esc(frame_label(s, j))}<br>#{int(i)}</figcaption></figure>'
            for j, i in enumerate(s.indices)
        )
        desc = esc(FRAME_SELECTORS.describe().get(n, ""))
        params = esc(", ".join(f"{k}={v!r}" for k, v in s.params.items()) or "defaults")
        warn = s.extras.get("warning")
        warn_html = f'<br><span class=warn>{esc(str(warn))}</span>' if warn else ""
        rows.append(
            f"<tr><td class=name><b>{esc(n)}</b><br><small>{desc}</small><br><code>{params}</code><br>"
            f"{s.timings['select'] * 1e3:.2f} ms · {len(s)} frames{warn_html}</td><td class=strip>{cells}</td></tr>"
        )
    for n, imgs in token_overlays(result).items():
        ts = result.token_selections[n]
        cells = "".join(
            f'<figure><img src="data:image/jpeg;base64,{_jpeg_b64(im)}"><figcaption>{c} tokens</figcaption></figure>'
            for im, c in zip(imgs, ts.counts)
        )
        rows.append(
            f"<tr><td class=name><b>tokens: {esc(n)}</b><br><small>on the frames of {esc(result.token_frames)}</small><br>"
            f"{ts.total} kept · {ts.timings.get('select', 0) * 1e3:.2f} ms</td><td class=strip>{cells}</td></tr>"
        )
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    stages = "".join(f"<tr><td>{esc(k)}</td><td>{v * 1e3:.1f} ms</td></tr>" for k, v in result.stage_times.items())
    errs = "".join(f"<li><b>{esc(k)}</b>: {esc(v, 2 * TEXT_LIMIT)}</li>" for k, v in result.errors.items())
    q = "none" if result.query is None else esc(result.query.text or result.query.kind)
    if result.query is not None and result.query.text and len(result.query.text) > TEXT_LIMIT:
        q += f" <small>({len(result.query.text):,} characters; the whole text is in selections.json)</small>"
    png_link = '<p><a href="report.png">report.png</a> · <a href="selections.json">selections.json</a></p>' if png is not None else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vidsieve compare: {esc(m.path)}</title>
<style>body{{font-family:sans-serif;margin:20px;color:#222}} table{{border-collapse:collapse}}
td{{border-bottom:1px solid #eee;padding:6px;vertical-align:top}} td.strip{{white-space:nowrap;overflow-x:auto;max-width:1200px}}
figure{{display:inline-block;margin:0 4px 0 0;text-align:center}} figcaption{{font-size:11px;color:#444}}
img{{height:80px;border-radius:3px}} td.name{{width:260px;min-width:260px}} .warn{{color:#b00;font-size:12px}} code{{font-size:11px}} .meta td{{border:none;padding:2px 12px 2px 0}}</style></head><body>
<h1>vidsieve compare</h1>
<table class=meta><tr><td>video</td><td>{esc(m.path)}</td></tr><tr><td>duration</td><td>{m.duration:.2f} s · {m.num_frames} frames · {m.fps:.3g} fps · {m.width}x{m.height} · {esc(m.codec)}</td></tr>
<tr><td>query</td><td>{q}</td></tr><tr><td>budget</td><td>{result.budget.frames} frames{'' if result.budget.tokens is None else f', {result.budget.tokens} tokens'}</td></tr>
<tr><td>encoder</td><td><code>{esc(result.encoder)}</code> · {len(result.features)} candidate frames</td></tr></table>
{('<h3>Notes</h3><ul>' + notes + '</ul>') if notes else ''}
<h2>Timeline</h2>{_timeline_svg(result)}
<h2>Selections</h2><table>{''.join(rows)}</table>
{('<h2>Errors</h2><ul>' + errs + '</ul>') if errs else ''}
<h2>Stage times</h2><table>{stages}</table>{png_link}
</body></html>"""


def write_report(result: CompareResult, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.html``, ``report.png`` and ``selections.json`` into ``out`` (all or nothing).

    Returns their paths. On any failure (a full disk, an unwritable directory) no file of a
    previous report is replaced and no temporary file is left behind.
    """
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"json": outdir / "selections.json", "png": outdir / "report.png", "html": outdir / "report.html"}
    png = render_png(result)
    data: dict[str, str | bytes] = {"json": json.dumps(result.to_json(), indent=1), "png": png,
                                    "html": render_html(result, png)}
    temps: dict[str, Path] = {}
    try:
        for key, path in paths.items():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temps[key] = tmp
            body = data[key]
            with open(tmp, "wb") as fh:
                fh.write(body.encode("utf-8") if isinstance(body, str) else body)
                fh.flush()
                os.fsync(fh.fileno())
        for key, path in paths.items():
            os.replace(temps.pop(key), path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return paths
