"""Tables for the terminal: one way to align columns for every command that prints one."""

from __future__ import annotations

from typing import Iterable, Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    """The header, a rule of dashes and one line per row, columns two spaces apart; the
    columns numbered in ``right`` are right-aligned (numbers), the others left-aligned.

    Example:
        >>> print(text_table(("model", "MACs"), [("A", "855.0M"), ("resnet50", "3.9G")], right={1}))
        model       MACs
        --------  ------
        A         855.0M
        resnet50    3.9G
    """
    right = set(right)
    widths = [max([len(title), *(len(row[i]) for row in rows)]) for i, title in enumerate(header)]

    def render(cells) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([render(header), render(["-" * width for width in widths])] + [render(row) for row in rows])
