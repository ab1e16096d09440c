"""Render sections into ONE self-contained HTML page: inline CSS, figures embedded as base64 PNG,
no JavaScript, no external URLs. It opens from disk in any browser, offline, and can be mailed."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fairmed.report.sections import Section

CSS = """
:root { --ink: #1a1a1a; --muted: #5a5a5a; --line: #d9d9d9; --accent: #0072B2; --bg: #fafafa; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); background: #fff; }
header { background: #0b3954; color: #fff; padding: 1.4rem 2rem 1rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
header p { margin: 0; color: #d6e6f0; font-size: .95rem; }
header p.lead { color: #fff; font-size: 1.05rem; max-width: 90ch; margin-bottom: .35rem; }
nav { padding: .6rem 2rem; border-bottom: 1px solid var(--line); background: var(--bg); font-size: .92rem; }
nav a { color: var(--accent); text-decoration: none; margin-right: 1.1rem; white-space: nowrap; }
main { max-width: 1180px; margin: 0 auto; padding: 0 2rem 3rem; }
section { border-bottom: 1px solid var(--line); padding: 1.2rem 0 1.4rem; }
section:last-child { border-bottom: none; }
h2 { font-size: 1.35rem; margin: .4rem 0 .6rem; color: #0b3954; }
h3 { font-size: 1.02rem; margin: 1rem 0 .4rem; }
p { margin: .4rem 0 .6rem; max-width: 75ch; }
.summary { background: #eef5fa; border-left: 5px solid var(--accent); padding: .8rem 1.2rem; margin-top: 1.2rem; }
.summary ul { margin: .3rem 0; padding-left: 1.2rem; }
.summary li { margin: .35rem 0; max-width: 90ch; }
figure { margin: 1rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: .9rem; max-width: 90ch; margin-top: .3rem; }
.table-wrap { overflow-x: auto; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-size: .88rem; }
caption { text-align: left; font-weight: bold; padding: .2rem 0 .4rem; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fbfbfb; }
td.pass, td.fail, td.unsure { white-space: pre-line; text-align: left; }
td.pass { background: #e3f4ea !important; color: #0b5d2a; font-weight: bold; }
td.fail { background: #fbe7dc !important; color: #8a3000; font-weight: bold; }
td.unsure { background: #fff6d6 !important; color: #6b5200; }
ul.notes { color: var(--muted); font-size: .92rem; }
pre { background: var(--bg); border: 1px solid var(--line); padding: .6rem .8rem; overflow-x: auto; font-size: .82rem; }
details summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: .85rem; padding: 1rem 2rem 2rem; text-align: center; }
"""


def embed_png(path: Path, alt: str) -> str:
    """An <img> with the PNG inlined as a data URI (no file or network access when opened)."""
    raw = Path(path).read_bytes()
    data = base64.b64encode(raw).decode("ascii")
    # figures are saved at 150 dpi; show them at their 100-dpi size so fonts read as designed
    width = int.from_bytes(raw[16:20], "big") * 100 // 150 if raw[:8] == b"\x89PNG\r\n\x1a\n" else 0
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{size} alt="{html.escape(alt, quote=True)}">'


def _cell(value) -> tuple[str, str]:
    """Formatted text and CSS class of one table cell."""
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), "text"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}", ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–", ""
        return (f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"), ""
    if value is None or value is pd.NA or value is pd.NaT:
        return "–", "text"
    text = str(value)
    first = text.split()[0] if text.strip() else ""
    return text, {"holds": "pass", "fails": "fail", "uncertain": "unsure"}.get(first, "text")


def _column_name(column) -> str:
    if isinstance(column, tuple):
        return " ".join(str(part) for part in column if str(part))
    return str(column)


def table_html(frame: pd.DataFrame, caption: str = "", max_rows: int = 200) -> str:
    """A DataFrame as a compact HTML table (numbers right-aligned, verdict cells coloured).

    A named index (e.g. ``method``) becomes the first column(s), and multi-level column names are
    joined ("Precision FST 1-3"), so that what labels the rows is never lost.
    """
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    shown = frame.head(max_rows)
    head = "".join(
        f'<th class="{"text" if not pd.api.types.is_numeric_dtype(shown.iloc[:, i]) else ""}">'
        f"{html.escape(_column_name(c))}</th>"
        for i, c in enumerate(shown.columns)
    )
    rows = []
    for values in shown.itertuples(index=False):
        cells = []
        for v in values:
            text, cls = _cell(v)
            cells.append(
                f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="notes">{len(frame) - max_rows} more rows in the Parquet file.</p>'
        if len(frame) > max_rows
        else ""
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{more}'


def section_html(section: Section) -> str:
    parts = [
        f'<section id="{html.escape(section.key, quote=True)}">',
        f"<h2>{html.escape(section.title)}</h2>",
    ]
    parts.append(section.intro_html())
    parts.append(section.html)
    for i, path in enumerate(section.figures):
        caption = section.caption(i)
        parts.append(
            f"<figure>{embed_png(path, caption or section.title)}"
            + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "")
            + "</figure>"
        )
    for caption, frame in section.tables.items():
        parts.append(table_html(frame, caption))
    if section.notes:
        parts.append(
            '<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in section.notes) + "</ul>"
        )
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def page_html(
    title: str, subtitle: str, sections: Sequence[Section], footer: str = "", description: str = ""
) -> str:
    """The whole report page."""
    nav = " ".join(
        f'<a href="#{html.escape(s.key, quote=True)}">{html.escape(s.title)}</a>' for s in sections
    )
    body = "\n".join(section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — fairmed report</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>{html.escape(title)}</h1>"
        + (f'<p class="lead">{html.escape(description)}</p>' if description else "")
        + f"<p>{html.escape(subtitle)}</p></header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>{html.escape(footer)}</footer></body></html>\n"
    )
