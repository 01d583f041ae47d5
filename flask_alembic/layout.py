"""Fitting a table to the terminal: which columns to show, how wide, what to shorten.

Pure text work, measured in terminal cells (a wide character takes two): Rich's
``cell_len`` is imported when a table is fitted, never before. A column holds one kind of
value, and the kind says what may happen to it when the table is too wide:

- ``ID``: revision ids (and lists of them, ``a -> b`` steps). Never cut, never wrapped.
- ``TEXT``: URLs, messages, notes, names. Shortened in the middle (``postgresql+psy…/test``)
  down to the column's ``least`` width, so both ends stay readable.
- ``FIXED``: short words (a state, a count, a time). Shown whole.

A URL column (``url``) loses its query string first, so the database name stays at its
end (``mysql+pymysql://…/shop``, not ``…charset=utf8mb4``).

When the table is still too wide, whole columns are left out, in the table's own order
(``drop``, first dropped first), each row staying one line; a column left out early comes
back when it fits beside what stays (a wide ``ID`` column may be the one that went).
Columns whose every value is the default (``idle``) go before anything is shortened: they
say nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

__all__ = [
    "FIXED",
    "ID",
    "TEXT",
    "Column",
    "Fitted",
    "cells",
    "fit",
    "shorten_middle",
    "shorten_url",
]

ID = "id"
TEXT = "text"
FIXED = "fixed"

#: Between two columns: a space, the rule, a space (Rich's default padding).
GAP = 3
ELLIPSIS = "…"


def cells(text: str) -> int:
    """The terminal cells ``text`` takes (a wide character counts two)."""
    from rich.cells import cell_len

    return cell_len(text)


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: its start and end around ``…``."""
    if cells(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    from rich.cells import get_character_cell_size as size

    room = width - 1
    head_room = (room + 1) // 2
    head = []
    used = 0
    for char in text:
        if used + size(char) > head_room:
            break
        head.append(char)
        used += size(char)
    tail: list[str] = []
    tail_room = room - used
    used = 0
    for char in reversed(text):
        if used + size(char) > tail_room:
            break
        tail.append(char)
        used += size(char)
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))


def shorten_url(url: str, width: int) -> str:
    """``url`` in at most ``width`` cells, its database name kept at the end: the query
    string (``?charset=utf8mb4``, options) goes first, then the middle."""
    if cells(url) <= width:
        return url
    base, query, _ = url.partition("?")
    if query and cells(base) + 2 <= width:
        return base + "?" + ELLIPSIS
    return shorten_middle(base if query else url, width)


@dataclass(kw_only=True)
class Column:
    """One column: its header, its cells (plain text), and what fitting may do to it."""

    header: str
    values: list[str] = field(default_factory=list)
    kind: str = TEXT
    #: A ``TEXT`` column is not shortened below this (nor below its header).
    least: int = 12
    #: Every value is the default: left out first, as it tells nothing.
    idle: bool = False
    #: The values are URLs: shortened with :func:`shorten_url`.
    url: bool = False
    justify: str = "left"
    style: str = ""
    #: A style per value (empty: the column's style alone).
    styles: list[str] = field(default_factory=list)
    #: How a ``TEXT`` value is shortened to a width: in the middle unless said otherwise.
    shorten: Callable[[str, int], str] | None = None

    @property
    def natural(self) -> int:
        return max([cells(self.header), *(cells(v) for v in self.values)])

    @property
    def floor(self) -> int:
        if self.kind != TEXT:
            return self.natural
        return min(self.natural, max(self.least, cells(self.header)))


@dataclass(frozen=True)
class Fitted:
    """The columns shown, in their order, each with its width and shortened values, and
    the headers of the columns left out (idle ones not included: they lost nothing)."""

    columns: list[Column]
    widths: list[int]
    left_out: list[str]

    @property
    def width(self) -> int:
        return sum(self.widths) + GAP * (len(self.widths) - 1)


def _width(columns: Sequence[Column], widths: Sequence[int]) -> int:
    return sum(widths) + GAP * (len(columns) - 1)


def _shrink(columns: Sequence[Column], width: int) -> list[int]:
    """Widths for ``columns`` in ``width`` cells: the widest ``TEXT`` column gives a cell
    at a time, down to its floor; the total may stay above ``width``."""
    widths = [c.natural for c in columns]
    excess = _width(columns, widths) - width
    while excess > 0:
        room = [
            (widths[i] - c.floor, widths[i], i)
            for i, c in enumerate(columns)
            if c.kind == TEXT and widths[i] > c.floor
        ]
        if not room:
            break
        _, _, index = max(room, key=lambda item: (item[1], -item[2]))
        widths[index] -= 1
        excess -= 1
    return widths


def fit(columns: Sequence[Column], width: int, drop: Sequence[str] = ()) -> Fitted:
    """The columns to show in ``width`` cells, and their widths.

    :param drop: headers of the columns that may be left out, first to go first; the
        others are always shown (the table may then be wider than ``width``).
    """
    shown = list(columns)
    left_out: list[str] = []
    if _width(shown, [c.natural for c in shown]) > width:
        shown = [c for c in shown if not (c.idle and c.header in drop)]
    widths = _shrink(shown, width)
    for header in drop:
        if _width(shown, widths) <= width:
            break
        if header not in [c.header for c in shown]:
            continue
        shown = [c for c in shown if c.header != header]
        left_out.append(header)
        widths = _shrink(shown, width)
    # A column left out early may fit again once a wider one has gone: put back the most
    # important first (the last left out), in its place.
    for header in reversed(list(left_out)):
        candidate = [c for c in columns if c.header == header or any(c is s for s in shown)]
        candidate_widths = _shrink(candidate, width)
        if _width(candidate, candidate_widths) <= width:
            shown, widths = candidate, candidate_widths
            left_out.remove(header)
    fitted = []
    for column, column_width in zip(shown, widths, strict=True):
        if column.kind == TEXT:
            shorten = column.shorten or (shorten_url if column.url else shorten_middle)
            values = [shorten(v, column_width) for v in column.values]
            column = replace(column, values=values)
        fitted.append(column)
    return Fitted(fitted, widths, left_out)
