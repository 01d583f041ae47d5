"""Lock, read, plan, run: what ``upgrade``, ``downgrade`` and ``stamp`` do; offline SQL.

The planner and the executor are imported only when there is something to plan: a
deploy with nothing to do reads the version tables, answers from the revision cache and
loads neither Alembic nor either of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Command
from .errors import PlanError
from .errors import RevisionError
from .errors import UnknownBindError
from .identity import DatabaseIdentity
from .identity import Identities
from .loader import Loader
from .plan import Direction
from .plan import MigrationResult
from .plan import OfflineSQL
from .plan import Plan
from .plan import Target
from .plan import to_tuple
from .registry import Bind
from .registry import bind_directory_name
from .status import current_heads
from .status import unlocked_heads

if TYPE_CHECKING:
    from . import locking
    from .executor import EventCallback

__all__ = [
    "Request",
    "make_plan",
    "migrate",
    "offline_range",
    "render_sql",
    "run_plan",
    "write_sql",
]


class Request:
    """What the user asked for: a direction and a target for some binds.

    A plain class, not a named tuple or dataclass: this module loads on every deploy,
    and defining one of those costs far more than the class itself.
    """

    __slots__ = ("binds", "direction", "explicit", "purge", "target", "with_dependencies")

    def __init__(
        self,
        direction: Direction,
        target: Target,
        binds: Iterable[Bind],
        *,
        explicit: bool = False,
        with_dependencies: bool = False,
        purge: bool = False,
    ) -> None:
        self.direction = direction
        self.target = target
        self.binds = tuple(binds)
        #: Whether the user chose the binds: a target of another bind is then named as such.
        self.explicit = explicit
        #: Upgrade other binds as far as the selected ones depend on them.
        self.with_dependencies = with_dependencies
        #: Stamp: empty each version table first.
        self.purge = purge

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.binds]

    def aiming_at(self, target: Target) -> Request:
        """The same request with another target."""
        return Request(
            self.direction,
            target,
            self.binds,
            explicit=self.explicit,
            with_dependencies=self.with_dependencies,
            purge=self.purge,
        )


def make_plan(
    loader: Loader,
    identities: Identities,
    request: Request,
    *,
    current: Mapping[str, tuple[str, ...]] | None = None,
    offline: bool = False,
) -> Plan:
    """The plan that carries out ``request``.

    :param current: each bind's heads; read from the version tables when not given.
    :param offline: for ``--sql``: the state of binds outside the plan is unknown.
    """
    from .history import related_binds
    from .history import resolve_target
    from .planner import plan_migration
    from .planner import plan_stamp

    direction, target = request.direction, request.target
    all_histories = loader.histories
    selected = [all_histories[name] for name in request.names]
    try:
        targets = resolve_target(target, selected, direction=direction)
    except RevisionError:
        if not request.explicit:
            raise
        # Name the bind a target belongs to when --bind left it out.
        targets = resolve_target(target, list(all_histories.values()), direction=direction)
    for name in targets:
        if name not in request.names:
            raise UnknownBindError(
                f"Target {target!r} belongs to bind {name!r}, which is not selected.",
                bind=name,
                hint=f"Add --bind {name}, or drop --bind.",
            )
    if current is None:
        involved = related_binds(direction, request.names, all_histories)
        current = current_heads(
            loader, identities, [b for b in loader.registry if b.name in involved]
        )
    if direction == "stamp":
        return plan_stamp(
            selected,
            current,
            targets,
            purge=request.purge,
            owner_of=loader.owner_of,
            spelled=str(target),
        )
    return plan_migration(
        direction,
        selected,
        current,
        targets,
        all_histories=list(all_histories.values()),
        with_dependencies=request.with_dependencies,
        offline=offline,
        owner_of=loader.owner_of,
        spelled=str(target),
    )


def offline_range(loader: Loader, request: Request) -> tuple[str, dict[str, tuple[str, ...]]]:
    """Split an offline target ``FROM:TO`` into ``TO`` and each bind's start (``FROM``).

    Offline, no database says where a bind is: without ``FROM`` it starts at base. A
    downgrade needs the range.
    """
    from .history import resolve_target
    from .history import revision_ids

    text = str(request.target)
    start: str | None = None
    if ":" in text:
        start, _, text = text.partition(":")
    elif request.direction == "downgrade":
        raise RevisionError(
            f"Offline downgrade needs a range 'FROM:TO', got {text!r}.",
            revision=text,
            hint=_one_step_back(loader, request.names),
        )
    histories = loader.histories
    current: dict[str, tuple[str, ...]] = dict.fromkeys(request.names, ())
    if start:
        starts = resolve_target(
            start, [histories[name] for name in request.names], direction="upgrade"
        )
        for name, value in starts.items():
            current[name] = revision_ids(histories[name].revision_map, value)
    return text, current


def _one_step_back(loader: Loader, names: Sequence[str]) -> tuple[str | Command, ...]:
    """A hint for ``downgrade --sql`` without a range: the SQL of one step back from the
    first selected bind's head, named with ``--bind`` (offline, no database says where a
    bind is)."""
    name = names[0]
    history = loader.histories[name]
    heads = history.heads
    step = "HEAD:PARENT"
    if len(heads) == 1:
        parents = to_tuple(history.get(heads[0]).down_revision)
        if len(parents) <= 1:
            step = f"{heads[0]}:{parents[0] if parents else 'base'}"
    more = " (one bind at a time)" if len(names) > 1 else ""
    return (
        f"For the SQL of one step back on bind {name!r}{more}: ",
        Command("downgrade", "--sql", "--bind", name, step),
        ".",
    )


def render_sql(
    loader: Loader, plan: Plan, *, tag: str | None, x_arguments: Sequence[str] | None = None
) -> OfflineSQL:
    """The SQL of each bind's part of ``plan`` (offline mode): nothing connects or runs."""
    from . import executor

    loader.check_steps(plan)
    return executor.render_sql(plan, loader.runtimes, tag=tag, x_arguments=x_arguments)


def migrate(
    loader: Loader,
    identities: Identities,
    request: Request,
    *,
    parallel: int,
    lock_timeout: float | None,
    lock: bool = True,
    on_plan: Callable[[Plan], None] | None = None,
    on_event: EventCallback | None = None,
    on_wait: Callable[[Bind], None] | None = None,
    tag: str | None = None,
    x_arguments: Sequence[str] | None = None,
    check: Callable[[Plan], None] | None = None,
) -> MigrationResult:
    """Lock, plan and run in one go: the involved databases' locks are held while their
    version tables are read, the plan made (``on_plan`` sees it) and run.

    :param check: called with a plan that has steps, its revisions imported, before
        ``on_plan``: raising refuses the whole plan before any step runs (the linter's
        ``ALEMBIC_LINT = "refuse"``).
    """
    names = request.names
    single = request.target == "head"
    quick = None
    if request.direction == "upgrade" and str(request.target) in {"heads", "head"}:
        quick = loader.quick_graph()
    if quick is not None:
        # The common deploy: nothing to do. Told first without any lock (a database at
        # its heads, that nobody was migrating as it was read, needed nothing then), and
        # without loading Alembic.
        reached = [b for b in loader.registry if b.name in quick.related(names)]
        current = unlocked_heads(loader, identities, reached)
        if current is not None and all(quick.at_heads(n, current[n], single=single) for n in names):
            return _nothing_to_do(names, on_plan)
        if not quick.exact:
            # Folders trusted whole can only tell that there is nothing to do: the binds
            # to lock and the plan come from a graph with every file checked.
            quick = loader.quick_graph(exact=True)
    if quick is not None:
        involved = quick.related(names)
    else:
        from .history import related_binds

        involved = related_binds(request.direction, names, loader.histories)
    involved_binds = [b for b in loader.registry if b.name in involved]
    from . import locking

    to_lock = involved_binds if lock else []
    with locking.lock_binds(to_lock, lock_timeout, identities, on_wait=on_wait) as held:
        # Read under the lock (and checked for shared version tables): not read again.
        current = current_heads(loader, identities, involved_binds)
        if quick is not None and all(quick.at_heads(n, current[n], single=single) for n in names):
            return _nothing_to_do(names, on_plan)
        try:
            plan = make_plan(loader, identities, request, current=current)
        except PlanError as exc:
            if exc.dependency is not None:
                # Its hint says to upgrade the other bind: not when that would be harmful.
                dependency = exc.dependency
                _refuse_mismatch(loader, identities, dependency, current.get(dependency, ()))
            raise
        loader.import_steps(plan)
        if check is not None and plan.steps:
            check(plan)
        if on_plan is not None:
            on_plan(plan)
        return _execute(
            loader,
            identities,
            plan,
            held,
            on_event=on_event,
            tag=tag,
            x_arguments=x_arguments,
            parallel=parallel,
        )


def _nothing_to_do(names: Sequence[str], on_plan: Callable[[Plan], None] | None) -> MigrationResult:
    plan = Plan(direction="upgrade", steps=(), start={}, unchanged=tuple(names))
    if on_plan is not None:
        on_plan(plan)
    return MigrationResult(plan=plan, binds=())


def _refuse_mismatch(
    loader: Loader, identities: Identities, name: str, current: Sequence[str]
) -> None:
    """Raise the bind's :class:`~flask_alembic.errors.VersionTableMismatchError` if a
    revision that upgrading it would run creates a table its database has already."""
    from .drift import mismatch

    bind = next(b for b in loader.registry if b.name == name)
    with bind.connect() as connection:
        identity = identities.read(bind.engine, connection)
        error = mismatch(bind, loader.histories[name], tuple(current), connection, identity)
    if error is not None:
        raise error from None


def run_plan(
    loader: Loader,
    identities: Identities,
    plan: Plan,
    *,
    parallel: int,
    lock_timeout: float | None,
    on_event: EventCallback | None = None,
    tag: str | None = None,
    lock: bool = True,
    x_arguments: Sequence[str] | None = None,
    check: Callable[[Plan], None] | None = None,
) -> MigrationResult:
    """Run a plan made earlier; the executor refuses a bind that moved since.

    :param check: as for :func:`migrate`: raising refuses the plan before any lock.
    """
    from . import locking

    binds = [b for b in loader.registry if b.name in plan.start]
    loader.import_steps(plan)
    if check is not None and plan.steps:
        check(plan)
    with locking.lock_binds(binds if lock else [], lock_timeout, identities) as held:
        loader.registry.check_version_tables(binds, identities)
        return _execute(
            loader,
            identities,
            plan,
            held,
            on_event=on_event,
            tag=tag,
            x_arguments=x_arguments,
            parallel=parallel,
        )


def _execute(
    loader: Loader,
    identities: Identities,
    plan: Plan,
    held: locking.HeldLocks,
    *,
    on_event: EventCallback | None,
    tag: str | None,
    parallel: int,
    x_arguments: Sequence[str] | None = None,
) -> MigrationResult:
    from . import executor

    # The identity of each database the plan changes: binds sharing one take turns.
    databases: dict[str, DatabaseIdentity] = {
        name: loader.registry[name].identity(identities) for name in plan.binds
    }
    # Before each step, and before its version row is written: is the lock still held?
    return executor.execute(
        plan,
        loader.runtimes,
        on_event=on_event,
        tag=tag,
        x_arguments=x_arguments,
        parallel=parallel,
        databases=databases,
        guard=held.check,
        release_modules=not loader.keep_modules,
    )


def _segments(statements: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The SQL in the order to apply it: the plan's segments, or the dict's order."""
    if isinstance(statements, OfflineSQL):
        return statements.segments
    return tuple(statements.items())


def write_sql(statements: Mapping[str, str], directory: str | os.PathLike[str]) -> list[Path]:
    """Write offline SQL into ``directory``, one ``BIND.sql`` file per bind.

    When the plan interleaves binds, one file per segment instead, numbered in the order
    to apply them: ``1-default.sql``, ``2-analytics.sql``, ``3-default.sql``.

    Every file's place is checked before any is written: a failure writes nothing.
    """
    from .errors import FlaskAlembicError

    folder = Path(directory)
    segments = _segments(statements)
    if len(segments) > len({name for name, _ in segments}):
        # The plan comes back to a bind: number the files in the order to apply them.
        width = len(str(len(segments)))
        paths = [
            folder / f"{number:0{width}d}-{bind_directory_name(name)}.sql"
            for number, (name, _) in enumerate(segments, 1)
        ]
    else:
        paths = [folder / f"{bind_directory_name(name)}.sql" for name, _ in segments]
    hint = "Choose another output folder, or move it away."
    for place in (folder, *folder.absolute().parents):
        if place.exists():
            if not place.is_dir():
                raise FlaskAlembicError(
                    f"Cannot write the SQL into {folder}: {place} is a file, not a folder.",
                    path=str(place),
                    hint=hint,
                )
            break
    for path in paths:
        if path.is_dir():
            raise FlaskAlembicError(
                f"Cannot write the SQL to {path}: it is a folder.", path=str(path), hint=hint
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, (_, sql) in zip(paths, segments, strict=True):
            path.write_text(sql, encoding="utf-8")
    except OSError as exc:
        raise FlaskAlembicError(
            f"Cannot write the SQL into {folder}: {exc.strerror or exc}.",
            path=str(exc.filename or folder),
            hint="Check the folder's permissions, or choose another output folder.",
        ) from None
    return paths
