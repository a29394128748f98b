"""What the doctor hands back: one finding (`DiagnosticWarning`), the Monitor's report, and the
text and HTML tables they are shown as. Nothing here measures or decides anything.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

# Each kind's section in docs/diagnostics.md, linked from the end of its message.
DOCS_PAGE = "docs/diagnostics.md"


@dataclass(frozen=True)
class DiagnosticWarning:
    """One finding of `Monitor.report`: a `kind` tests and code can check, and a one-line
    `message` that names the layer or parameter and suggests a fix.

    Kinds: ``saturation``, ``vanishing_gradient``, ``dead_relu``, ``small_update``,
    ``large_update``, ``high_first_loss``, ``chance_accuracy``, ``all_positive_init``,
    ``all_equal_init``, ``non_finite``, ``exploding_gradient``, ``unstable_loss``,
    ``unnormalized_input``, ``output_loss_mismatch``, ``constant_output``, ``unshuffled_data``,
    ``grad_not_zeroed``, ``overfitting``. ``docs`` is the section of docs/diagnostics.md that
    explains the kind.
    """

    kind: str
    message: str

    @property
    def docs(self) -> str:
        """Where this kind is explained, e.g. ``docs/diagnostics.md#unstable_loss``."""
        return f"{DOCS_PAGE}#{self.kind}"

    def __str__(self) -> str:
        return self.message


def warn(kind: str, message: str) -> DiagnosticWarning:
    """A warning whose message ends with the link to its section of the docs."""
    return DiagnosticWarning(kind, f"{message} [{DOCS_PAGE}#{kind}]")


class DiagnosticsReport:
    """What `Monitor.report` returns: ``str(report)`` is the table followed by the warnings;
    ``report.warnings`` is the list of `DiagnosticWarning`, ``report.kinds`` their kinds.
    In Jupyter it displays as HTML tables."""

    def __init__(self, table: str, warnings: list, tables: tuple = ()):
        self.table = table
        self.warnings = warnings
        self._tables = tables  # (title lines, rows) pairs: the same table, for HTML

    @property
    def kinds(self) -> set:
        """The set of the warnings' kinds, e.g. ``{"saturation", "vanishing_gradient"}``."""
        return {warning.kind for warning in self.warnings}

    def __str__(self) -> str:
        if not self.warnings:
            return self.table + "\nno warnings"
        return self.table + "\nwarnings:\n" + "\n".join(f"- {w.message}" for w in self.warnings)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(line)}</p>" for line in self.table.splitlines()[:2] if line]
        parts += [html_table(rows) for rows in self._tables]
        if self.warnings:
            items = "".join(f"<li><b>{html.escape(w.kind)}</b>: {html.escape(w.message)}</li>"
                            for w in self.warnings)
            parts.append(f"<p>warnings:</p><ul>{items}</ul>")
        else:
            parts.append("<p>no warnings</p>")
        return "\n".join(parts)


def html_table(rows: list) -> str:
    """Rows of strings (the first is the header) as an HTML table; numbers right-aligned."""
    header = "".join(f"<th>{html.escape(cell)}</th>" for cell in rows[0])
    body = "".join(
        "<tr>" + "".join(
            f'<td style="text-align:{"left" if i == 0 else "right"}">{html.escape(cell)}</td>'
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows[1:]
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def columns(rows: list) -> list:
    """Left-align the first column, right-align the rest, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return [""] + lines


def fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def sci(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2e}"


def times(big: float, small: float) -> str:
    return "infinitely" if small == 0 else f"{big / small:.0f}x"
