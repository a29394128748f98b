"""Tables for the reports learners read (check_backprop, compare_grads, summary): one way to lay
out a table as text for print() and as HTML for Jupyter, so every report looks alike, and one
way to write a shape (also in drawings).

Only formatting lives here: the reports decide what goes in the cells.
"""
from __future__ import annotations

import html


def text_table(header: tuple, rows: list) -> list:
    """The lines of a table with columns padded to their widest cell (cells are strings)."""
    table = [tuple(header)] + [tuple(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]


def html_table(title: str, header: tuple, rows: list, notes: list = (), bad_rows: tuple = ()) -> str:
    """An HTML table with a title above and notes below; rows whose index is in `bad_rows` are
    tinted (the wrong gradients), so the eye finds them first."""
    head = "".join(f"<th style='text-align:left'>{html.escape(cell)}</th>" for cell in header)
    body = []
    for i, row in enumerate(rows):
        tint = " style='background:#fde0dd'" if i in bad_rows else ""
        cells = "".join(f"<td style='text-align:left'><code>{html.escape(cell)}</code></td>" for cell in row)
        body.append(f"<tr{tint}>{cells}</tr>")
    notes_html = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return (f"<div><p><b>{html.escape(title)}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (f"<ul>{notes_html}</ul>" if notes_html else "") + "</div>")


def shape_text(shape) -> str:
    """A shape as NumPy prints it, "(5,)" or "(20, 5)", also when its sides are NumPy integers
    (whose repr in NumPy 2 is "np.int64(5)"); "-" for no shape."""
    if shape is None:
        return "-"
    return str(tuple(int(n) for n in shape))
