"""HTML building blocks for a report that is one self-contained file.

Everything a report shows comes from files a model or a user wrote (prompts,
test inputs, predictions), so every piece of text goes through `esc` here and
nothing else builds markup. The page carries its CSS inline, its images as
data: URIs and a Content-Security-Policy that forbids every fetch but data:
images: opened from a mail attachment or a CI artifact, it requests nothing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1a1a1a;
       max-width: 1100px; margin: 24px auto; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { font-weight: 600; background: #f7f7f7; }
td.text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
          font-size: 0.95em; }
pre.prompt { white-space: pre-wrap; word-break: break-word; background: #f7f7f7;
             border: 1px solid #ddd; padding: 10px; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.note { border-left: 4px solid #999; background: #f6f6f6; padding: 6px 10px; margin: 8px 0; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.kv dt { color: #555; } dl.kv dd { margin: 0; }
"""
"""Greys only: colour on the page belongs to the charts."""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n<p class='sub'>{esc(subtitle)}</p>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def section(title: str, *parts: str, id: str | None = None) -> str:
    ident = f" id='{esc(id)}'" if id else ""
    return f"<section{ident}>\n<h2>{esc(title)}</h2>\n" + "\n".join(parts) + "\n</section>"


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def para(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def figure(png: bytes, alt: str, caption: str, id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure id='{esc(id)}'><img src='data:image/png;base64,{data}' alt='{esc(alt)}'>"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def prompt_block(text: str) -> str:
    return f"<pre class='prompt'>{esc(text)}</pre>"


def key_values(items: Sequence[tuple[str, object]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f"<dl class='kv'>{rows}</dl>"


class Cell:
    """A table cell's text and how it is laid out ('num', 'text' or plain)."""

    def __init__(self, value: object, kind: str = "") -> None:
        self.value = value
        self.kind = kind


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    id: str | None = None,
    highlight: Sequence[bool] = (),
) -> str:
    """Cells are escaped; a `Cell` sets its alignment, numbers align right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for value in row:
            cell = value if isinstance(value, Cell) else Cell(value, _kind(value))
            klass = f" class='{cell.kind}'" if cell.kind else ""
            cells.append(f"<td{klass}>{esc(cell.value)}</td>")
        best = index < len(highlight) and highlight[index]
        row_class = " class='best'" if best else ""
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    ident = f" id='{esc(id)}'" if id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kind(value: object) -> str:
    return "num" if isinstance(value, int | float) and not isinstance(value, bool) else ""
