"""The pieces every report page is made of: tables, outcome matrices, and the alignment of their
columns (text left, numbers right) in the index and in each rendered notebook alike."""

from __future__ import annotations

import html

import pandas as pd

# Each table's columns: left for text, right where every cell is a number. Jupyter's own style
# right-aligns every cell of a dataframe (`:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td`);
# the class set here decides instead, by selectors as specific as that one, coming later.
_CELLS = ":not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon"
ALIGN_CSS = f"""table td, table th, {_CELLS} td, {_CELLS} th {{text-align:left}}
table td.num, table th.num, {_CELLS} td.num, {_CELLS} th.num {{text-align:right}}
td.o-pass{{background:#e8f5e9}} td.o-fail,td.o-xpass{{background:#ffcdd2;font-weight:600}}
td.o-xfail{{background:#fff8e1}} td.o-skip{{background:#eceff1}} div.wide{{overflow-x:auto;max-width:100%}}"""
ALIGN_JS = """addEventListener("DOMContentLoaded", () => {
  const number = /^[-+]?[\\d,]*\\.?\\d+(e[-+]?\\d+)?%?$/i;
  for (const table of document.querySelectorAll("table")) {
    const rows = [...table.rows], body = rows.filter(r => r.parentElement.tagName !== "THEAD");
    const width = Math.max(0, ...rows.map(r => r.cells.length));
    for (let j = 0; j < width; j++) {
      const cells = body.map(r => r.cells[j]).filter(c => c && c.textContent.trim() !== "");
      if (cells.length && cells.every(c => number.test(c.textContent.trim())))
        rows.forEach(r => r.cells[j] && r.cells[j].classList.add("num"));
    }
  }
});"""


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(str(value), quote=False)


def table(df: pd.DataFrame) -> str:
    """A dataframe as an HTML table, every row of it."""
    if df.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return _wide(f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _wide(table_html: str) -> str:
    """A table wider than the page scrolls in its own box, not the page."""
    return f"<div class='wide'>{table_html}</div>"


def matrix(cells: pd.DataFrame, corner: str = "") -> str:
    """A table of outcomes (pass, fail, xfail, xpass, skip), each cell coloured by its own; the
    index names the rows."""
    if cells.empty:
        return "<p>none</p>"
    head = f"<th>{html.escape(corner)}</th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cells.columns)
    body = "".join(f"<tr><th>{html.escape(str(name))}</th>" + "".join(
        f"<td class='o-{html.escape(str(v))}'>{html.escape(str(v))}</td>" if v else "<td></td>" for v in row) + "</tr>"
        for name, row in zip(cells.index, cells.itertuples(index=False)))
    return _wide(f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
