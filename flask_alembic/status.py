"""Where each bind's database stands: reading version tables, and the status rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import DatabaseError
from .errors import FlaskAlembicError
from .errors import RevisionError
from .identity import Identities
from .loader import Loader
from .loader import QuickGraph
from .registry import Bind

if TYPE_CHECKING:
    from .history import BindHistory

__all__ = [
    "STATES",
    "BindStatus",
    "HeadsReader",
    "State",
    "current_heads",
    "read_status",
    "version_table_name",
]


class State(StrEnum):
    """Where a bind stands, from best to worst; its value is the word ``status`` prints."""

    UP_TO_DATE = "up to date"
    PENDING = "pending"
    MULTIPLE_HEADS = "multiple heads"
    UNKNOWN_REVISION = "ahead/unknown revision"
    UNREACHABLE = "unreachable"
    #: A bind that is not migrated at all (no models, or excluded): never connected to.
    NOT_MANAGED = "not managed"


#: The states ``status()`` reports, from best to worst, as strings.
STATES = tuple(State)


@dataclass(frozen=True, kw_only=True)
class BindStatus:
    """Where one bind's database stands against its scripts."""

    bind: str
    #: The database URL with the password hidden.
    url: str
    version_table: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    #: Steps an upgrade to heads would run; ``None`` when it cannot be known.
    pending: int | None
    state: State = State.UP_TO_DATE
    #: Why the state is ``unreachable`` or ``ahead/unknown revision``, in one line.
    error: FlaskAlembicError | None = None
    #: Why the bind is managed or not (for a bind that is not: why it is left alone).
    reason: str = "it has models"

    @property
    def up_to_date(self) -> bool:
        return self.state == State.UP_TO_DATE

    @property
    def managed(self) -> bool:
        """Whether Flask-Alembic migrates this bind."""
        return self.state != State.NOT_MANAGED


class HeadsReader:
    """Reads version tables on short-lived connections, one per bind.

    The first connection to each database also tells its identity.
    """

    def __init__(self, stack: ExitStack, identities: Identities) -> None:
        self.stack = stack
        self.identities = identities

    def heads(self, bind: Bind) -> tuple[str, ...]:
        connection = self.stack.enter_context(bind.connect())
        self.identities.read(bind.engine, connection)
        try:
            return bind.read_heads(connection)
        except sa.exc.DBAPIError as exc:
            raise bind.database_error(
                "read the version table of",
                exc,
                "Check the bind's 'version_table' and 'version_table_schema' settings.",
            ) from None

    @classmethod
    @contextmanager
    def open(cls, identities: Identities) -> Iterator[HeadsReader]:
        """A reader whose connections close when the block ends."""
        with ExitStack() as stack:
            yield cls(stack, identities)


def current_heads(
    loader: Loader, identities: Identities, binds: Iterable[Bind]
) -> dict[str, tuple[str, ...]]:
    """Each bind's heads, once no two binds turn out to share a version table."""
    binds = list(binds)
    with HeadsReader.open(identities) as reader:
        heads = {b.name: reader.heads(b) for b in binds}
    loader.registry.check_version_tables(binds, identities)
    return heads


def read_status(loader: Loader, identities: Identities, binds: Iterable[Bind]) -> list[BindStatus]:
    """Where each of ``binds`` stands; a failing bind does not hide the others.

    Binds that are not managed are listed too, with the reason, and never connected to.
    """
    everything = list(binds)
    managed = [b for b in everything if b.managed]
    rows = {b.name: _unmanaged_row(b) for b in everything if not b.managed}
    if managed:
        quick = loader.quick_graph()
        found = _quick_rows(loader, identities, managed, quick) if quick is not None else None
        if found is None:
            histories = loader.histories
            with HeadsReader.open(identities) as reader:
                found = [
                    _bind_row(loader, identities, b, histories[b.name], reader) for b in managed
                ]
        rows.update((row.bind, row) for row in found)
    return [rows[b.name] for b in everything]


def _row(
    bind: Bind,
    *,
    current: tuple[str, ...] = (),
    heads: tuple[str, ...] = (),
    pending: int | None = None,
    state: State = State.UP_TO_DATE,
    error: FlaskAlembicError | None = None,
) -> BindStatus:
    """A bind's status row, with what the bind itself says filled in."""
    return BindStatus(
        bind=bind.name,
        url=bind.display_url,
        version_table=version_table_name(bind),
        current=current,
        heads=heads,
        pending=pending,
        state=state,
        error=error,
        reason=bind.reason,
    )


def _unmanaged_row(bind: Bind) -> BindStatus:
    """The status row of a bind that is not migrated: nothing is read from its database."""
    return _row(bind, state=State.NOT_MANAGED)


def _quick_rows(
    loader: Loader, identities: Identities, binds: list[Bind], quick: QuickGraph
) -> list[BindStatus] | None:
    """Status rows from the cache when every bind is simply at its single head."""
    rows = []
    with HeadsReader.open(identities) as reader:
        for b in binds:
            try:
                current = reader.heads(b)
            except DatabaseError:
                return None
            if not quick.at_heads(b.name, current, single=True):
                return None
            rows.append(_row(b, current=current, heads=current, pending=0))
        loader.registry.check_version_tables(binds, identities)
    return rows


def _bind_row(
    loader: Loader, identities: Identities, b: Bind, history: BindHistory, reader: HeadsReader
) -> BindStatus:
    heads = history.heads
    try:
        current = reader.heads(b)
    except DatabaseError as exc:
        return _row(b, heads=heads, state=State.UNREACHABLE, error=exc)
    from .planner import bind_steps

    loader.registry.check_version_tables([b], identities)
    row = _row(b, heads=heads, current=current)
    try:
        # Only this bind's own steps count; dependencies on other binds do not.
        steps = bind_steps("upgrade", history, current, "heads", owner_of=loader.owner_of)
    except RevisionError as exc:
        return dataclasses.replace(row, state=State.UNKNOWN_REVISION, error=exc)
    if len(heads) > 1:
        return dataclasses.replace(row, pending=len(steps), state=State.MULTIPLE_HEADS)
    state = State.PENDING if steps else State.UP_TO_DATE
    return dataclasses.replace(row, pending=len(steps), state=state)


def version_table_name(bind: Bind) -> str:
    """The bind's version table, with its schema when it has one."""
    if bind.version_table_schema:
        return f"{bind.version_table_schema}.{bind.version_table}"
    return bind.version_table
