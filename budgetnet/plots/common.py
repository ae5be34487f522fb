"""What every figure of :mod:`budgetnet.plots` shares: a pyplot-free figure, saving, wrapping."""

from __future__ import annotations

from pathlib import Path


def new_figure(size=(6.4, 4.4)):
    """A ``Figure`` made without pyplot (nothing changes the caller's backend), laid out by matplotlib.

    Example:
        >>> new_figure().get_size_inches().tolist()
        [6.4, 4.4]
    """
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def save(figure, path: str | Path | None):
    """Save ``figure`` as a PNG at ``path`` when one is given, whole or not at all
    (:func:`budgetnet.files.save_figure`); return the figure."""
    from budgetnet.files import save_figure

    if path is not None:
        save_figure(path, figure, format="png")
    return figure


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces only.

    Example:
        >>> wrap("res[(1,64)bn (3,64)bn (1,256)bn@none]x3", 20)
        ['res[(1,64)bn', '(3,64)bn', '(1,256)bn@none]x3']
    """
    import textwrap

    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]
