"""Values of planning and running: what will change (``Plan``) and what did (``MigrationResult``).

Plain frozen dataclasses that every layer shares; nothing here imports Alembic, Flask or
SQLAlchemy, so answering "nothing to do" needs none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BindResult",
    "Direction",
    "MigrationResult",
    "OfflineSQL",
    "Plan",
    "Step",
    "Target",
    "to_tuple",
]

Direction = Literal["upgrade", "downgrade", "stamp"]
#: A revision target as users give it: ``"heads"``, an id, ``"BIND@-1"``, or a count.
Target = str | int


def to_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A revision attribute or argument (``None``, one string or several) as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class Step:
    """One change to one bind's database: run a revision up or down, or stamp."""

    bind: str
    direction: Direction
    #: The revision whose code runs; ``None`` for a stamp.
    revision: str | None
    #: The bind's heads this step moves from and to (for a stamp: all of them).
    source: tuple[str, ...]
    destination: tuple[str, ...]
    message: str = ""
    path: str | None = None
    #: For a stamp: empty the version table first (asked for, or it holds unknown ids).
    purge: bool = False

    @property
    def label(self) -> str:
        """A short description: ``abc123 -> def456``."""
        return f"{', '.join(self.source) or 'base'} -> {', '.join(self.destination) or 'base'}"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """An ordered list of steps across binds; the same value is printed and run."""

    direction: Direction
    steps: tuple[Step, ...]
    #: The binds the plan was made for, in order, with the heads it assumed.
    start: Mapping[str, tuple[str, ...]]
    #: Binds whose database is already at the target.
    unchanged: tuple[str, ...] = ()
    #: Pairs of binds with a dependency between their steps: never run side by side.
    links: tuple[tuple[str, str], ...] = ()

    @property
    def binds(self) -> tuple[str, ...]:
        """The binds with at least one step, in the order they first appear."""
        return tuple(dict.fromkeys(step.bind for step in self.steps))

    def for_bind(self, name: str) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.bind == name)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True, kw_only=True)
class BindResult:
    """What happened to one bind."""

    bind: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    applied: tuple[Step, ...]
    elapsed: float
    #: The step that failed on this bind, and why; ``None`` when none did.
    failed: Step | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class MigrationResult:
    """The outcome of running a plan."""

    plan: Plan
    binds: tuple[BindResult, ...]
    #: The first step that failed, and why (each bind's own failure is in :attr:`binds`).
    failed: Step | None = None
    error: str | None = None
    not_run: tuple[Step, ...] = ()
    #: Wall-clock seconds the run took (binds running side by side overlap).
    elapsed: float = 0.0

    @property
    def applied(self) -> tuple[Step, ...]:
        return tuple(step for result in self.binds for step in result.applied)

    @property
    def failures(self) -> tuple[BindResult, ...]:
        """The binds on which a step failed (binds running side by side may each fail)."""
        return tuple(result for result in self.binds if result.failed is not None)

    @property
    def ok(self) -> bool:
        """Whether every planned step ran (no failure, no interruption)."""
        return self.failed is None and self.error is None

    def __getitem__(self, bind: str) -> BindResult:
        for result in self.binds:
            if result.bind == bind:
                return result
        raise KeyError(bind)


class OfflineSQL(dict[str, str]):
    """Offline SQL: a dict of bind name to that bind's SQL, in the plan's order.

    :attr:`segments` keeps the plan's exact order, ``(bind, sql)`` pairs: a bind whose steps
    the plan interleaves with another bind's appears once for each run of its steps.
    """

    def __init__(self, segments: Iterable[tuple[str, str]]) -> None:
        self.segments = tuple(segments)
        super().__init__()
        for bind, sql in self.segments:
            self[bind] = self.get(bind, "") + sql

    @property
    def interleaved(self) -> bool:
        """Whether a bind's SQL comes in more than one segment."""
        return len(self.segments) > len(self)
