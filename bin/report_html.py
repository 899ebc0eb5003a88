"""HTML pieces of the report: escaped tables, embedded images and CSV downloads, collapsed
blocks, the page's style. Nothing here loads anything from the network."""

from __future__ import annotations

import base64
import csv
import html
import io
import urllib.parse
from pathlib import Path

IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
# Colours an embedded PNG keeps: a plot's greys and few colours fit, at half the bytes of
# matplotlib's RGBA (a report embeds every plot of every tumour; the files stay as drawn).
PALETTE = 256

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 110em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.flag { color: #b00; font-weight: bold; }
.ok { color: #070; }
.info { color: #345; }
.expected, .expected td { color: #888; }
section.sample { border-top: 3px solid #ccc; margin-top: 2em; }
figure { margin: 0.5em 0; }
figcaption { color: #555; font-size: 90%; }
img { max-width: 100%; border: 1px solid #ddd; }
img.panel { max-width: 48%; }
details { margin: 0.5em 0; }
summary { cursor: pointer; font-weight: bold; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
a.download { margin-right: 1em; }
"""


def esc(value) -> str:
    return html.escape(str(value))


def table(header: list[str], rows: list[list[str]], raw: bool = False,
          row_class: list[str] | None = None) -> str:
    """An HTML table; cells are escaped unless `raw` (cells already HTML); `row_class` gives
    each row a class (e.g. "expected")."""
    cell = (lambda v: v) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    classes = row_class or [""] * len(rows)
    body = "".join((f'<tr class="{kind}">' if kind else "<tr>")
                   + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row, kind in zip(rows, classes, strict=True))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def embedded_bytes(path: Path) -> bytes:
    """A PNG in a palette of 256 colours (it looks the same at half the size); an SVG, or a
    PNG that Pillow cannot read, as is."""
    if path.suffix.lower() != ".png":
        return path.read_bytes()
    from PIL import Image  # noqa: PLC0415 - matplotlib's own dependency

    try:
        with Image.open(path) as drawn:
            reduced = drawn.convert("RGB").quantize(PALETTE)
    except OSError:
        return path.read_bytes()
    out = io.BytesIO()
    reduced.save(out, format="PNG", optimize=True)
    return out.getvalue()


def image(path: Path, alt: str, css: str = "") -> str:
    """`path` embedded as a data URI (PNG, palette-reduced, or SVG)."""
    data = base64.b64encode(embedded_bytes(path)).decode("ascii")
    kind = IMAGE_TYPES[path.suffix.lower()]
    return (f"<img{f' class={css!r}' if css else ''} alt='{esc(alt)}' "
            f"src='data:{kind};base64,{data}'>")


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ or a control
    character (a gene name from the annotation, say) gets a leading quote; numbers are kept."""
    if not cell or cell[0] not in "=+-@\t\r":
        return cell
    try:
        float(cell.replace(",", ""))
        return cell
    except ValueError:
        return "'" + cell


def csv_download(name: str, header: list[str], rows: list[list[str]], label: str) -> str:
    """A link that saves `rows` as NAME (CSV) from the page itself (a data URI), every cell
    spreadsheet-safe."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[spreadsheet_safe(str(cell)) for cell in row] for row in rows])
    uri = "data:text/csv;charset=utf-8," + urllib.parse.quote(text.getvalue())
    return f'<a class="download" download="{esc(name)}" href="{uri}">{esc(label)}</a>'


def details(summary: str, body: str, open_: bool = False) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{summary}</summary>{body}"
            "</details>")


def link(path: str) -> str:
    return f'<a href="{esc(path)}">{esc(path)}</a>'


def span(kind: str, text: str) -> str:
    return f'<span class="{kind}">{esc(text)}</span>'
