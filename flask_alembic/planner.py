"""Pure planning: revision histories + current heads + a target -> an ordered ``Plan``.

Nothing here opens a connection, reads a file or prints. Each bind's history is an
Alembic :class:`~alembic.script.revision.RevisionMap` holding only that bind's revisions;
dependencies between binds are given separately, because they mean "apply that revision
on its own database first", never "run it here". The result of running a plan
(:class:`MigrationResult`) is defined here too, so that answering "nothing to do" needs
no executor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from types import ModuleType
from typing import Any
from typing import Literal
from typing import TYPE_CHECKING

from .errors import AmbiguousTargetError
from .errors import MultipleHeadsError
from .errors import PlanError
from .errors import RevisionError

if TYPE_CHECKING:
    from alembic.script.revision import Revision
    from alembic.script.revision import RevisionMap

__all__ = [
    "BindHistory",
    "BindResult",
    "Direction",
    "MigrationResult",
    "Plan",
    "Step",
    "Target",
    "bind_steps",
    "plan_migration",
    "plan_stamp",
    "resolve_target",
    "revision_ids",
]

Direction = Literal["upgrade", "downgrade", "stamp"]


def _alembic() -> ModuleType:
    """Alembic's revision module, imported on first use: it is slow to import."""
    from alembic.script import revision

    return revision


def to_tuple(value: Any, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A revision attribute (``None``, a string or a sequence) as a tuple of ids."""
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    return tuple(value)


Target = str | int
_RELATIVE = re.compile(r"^[+-]\d+$")
_DIGITS = re.compile(r"^\d+$")


@dataclass(frozen=True)
class BindHistory:
    """One bind's revisions, and the revisions of other binds they depend on."""

    name: str
    revision_map: RevisionMap
    #: revision id -> ((other bind, revision id), ...) it depends on.
    foreign_dependencies: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def get(self, rev_id: str) -> Revision:
        rev = self.revision_map.get_revision(rev_id)
        assert rev is not None
        return rev

    def applied(self, heads: Iterable[str]) -> set[str]:
        """Every revision at or below ``heads``: what a database at those heads has applied."""
        seen: set[str] = set()
        stack = [h for h in heads if h]
        while stack:
            rev_id = stack.pop()
            if rev_id in seen:
                continue
            seen.add(rev_id)
            rev = self.get(rev_id)
            stack.extend(to_tuple(rev.down_revision, default=()))
            for token in to_tuple(rev.dependencies, default=()):
                dep = self.revision_map.get_revision(token)
                if dep is not None:
                    stack.append(dep.revision)
        return seen


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class BindResult:
    """What happened to one bind."""

    bind: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    applied: tuple[Step, ...]
    elapsed: float


@dataclass(frozen=True)
class MigrationResult:
    """The outcome of running a plan."""

    plan: Plan
    binds: tuple[BindResult, ...]
    failed: Step | None = None
    error: str | None = None
    not_run: tuple[Step, ...] = field(default=())
    #: Wall-clock seconds the run took (binds running side by side overlap).
    elapsed: float = 0.0

    @property
    def applied(self) -> tuple[Step, ...]:
        return tuple(step for result in self.binds for step in result.applied)

    @property
    def ok(self) -> bool:
        """Whether every planned step ran (no failure, no interruption)."""
        return self.failed is None and self.error is None

    def __getitem__(self, bind: str) -> BindResult:
        for result in self.binds:
            if result.bind == bind:
                return result
        raise KeyError(bind)


def resolve_target(
    target: Target,
    histories: Sequence[BindHistory],
    *,
    direction: Direction,
) -> dict[str, str | tuple[str, ...]]:
    """Turn a user's target into a target per bind, in each bind's own terms.

    :param histories: the selected binds, in order.
    """
    names = [h.name for h in histories]
    by_name = {h.name: h for h in histories}

    exact_only = isinstance(target, int)
    target = str(target).strip()
    if not target:
        raise RevisionError(
            "An empty revision target was given.", hint="Use 'heads' or a revision id."
        )

    if target in {"heads", "head", "base"}:
        return dict.fromkeys(names, target)
    given = target

    if "@" in target:
        prefix, _, rest = target.partition("@")
        if prefix in by_name:
            _refuse_zero_steps(rest, given, direction)
            return {prefix: rest}
        owner = _owner(prefix, histories, whole=target)
        return {owner: target}

    if _DIGITS.match(target):
        # A number is a revision id when one has exactly that id (or, for a string of
        # four digits or more, starts with it); only otherwise is it a count of steps.
        owners = [
            h.name
            for h in histories
            if _has_revision(h, target, prefix=not exact_only and len(target) >= 4)
        ]
        if len(owners) == 1:
            return {owners[0]: _full_id(by_name[owners[0]], target)}
        if len(owners) > 1:
            _owner(target, histories, whole=target)  # raises: ambiguous between binds
        target = ("+" if direction == "upgrade" else "-") + target

    if _RELATIVE.match(target):
        _refuse_zero_steps(target, given, direction)
        if len(histories) != 1:
            raise AmbiguousTargetError(
                f"The relative target {target!r} is ambiguous with several binds selected "
                f"({', '.join(names)}).",
                revision=target,
                hint=f"Name one bind: --bind {names[0]} or use '{names[0]}@{target}'.",
            )
        return {names[0]: target}

    owner = _owner(target, histories, whole=target)
    return {owner: _full_id(by_name[owner], target)}


def _refuse_zero_steps(target: str, given: str, direction: Direction) -> None:
    """``-0`` or ``+0`` moves nothing: almost certainly not what was meant."""
    if _RELATIVE.match(target) and int(target) == 0:
        example = "+1" if direction == "upgrade" else "-1"
        raise RevisionError(
            f"The target {given!r} is a count of zero steps, which would {direction} nothing.",
            revision=given,
            hint=f"Give a number of steps such as {example}, a revision id, or 'heads'/'base'.",
        )


def _has_revision(history: BindHistory, token: str, *, prefix: bool) -> bool:
    if not prefix:
        try:
            rev = history.revision_map.get_revision(token)
        except _alembic().RevisionError:
            return False
        return rev is not None and rev.revision == token
    return history.name in _owners(token, [history])


def revision_ids(rmap: RevisionMap, target: str | tuple[str, ...]) -> tuple[str, ...]:
    """The full ids of the revisions ``target`` names in ``rmap``."""
    return tuple(
        r.revision for r in rmap.get_revisions(target) if isinstance(r, _alembic().Revision)
    )


def _full_id(history: BindHistory, token: str) -> str:
    rev = history.revision_map.get_revision(token)
    return rev.revision if rev is not None else token


def _owners(token: str, histories: Sequence[BindHistory]) -> list[str]:
    owners = []
    for history in histories:
        try:
            if history.revision_map.get_revision(token) is not None:
                owners.append(history.name)
        except (_alembic().ResolutionError, _alembic().MultipleHeads):
            # unknown here, or an ambiguous prefix within this bind
            if _ambiguous_in(history, token):
                owners.append(history.name)
    return owners


def _ambiguous_in(history: BindHistory, token: str) -> bool:
    return (
        sum(
            1
            for rev in history.revision_map.iterate_revisions("heads", "base")
            if rev.revision.startswith(token)
        )
        > 1
    )


def _owner(token: str, histories: Sequence[BindHistory], *, whole: str) -> str:
    owners = _owners(token, histories)
    if not owners:
        names = ", ".join(h.name for h in histories)
        raise RevisionError(
            f"Unknown revision {whole!r} (looked in bind(s): {names}).",
            revision=whole,
            hint="Run 'flask db log' to list the revisions, or 'flask db heads' for the heads.",
        )
    if len(owners) > 1:
        raise RevisionError(
            f"Revision {whole!r} is ambiguous: it matches revisions in binds {', '.join(owners)}.",
            revision=whole,
            hint="Give more characters of the revision id, or prefix it with the bind: BIND@REV.",
        )
    owner = owners[0]
    history = next(h for h in histories if h.name == owner)
    if _ambiguous_in(history, token):
        raise RevisionError(
            f"Revision {whole!r} is ambiguous in bind {owner!r}: several revision ids start "
            "with it.",
            bind=owner,
            revision=whole,
            hint="Give more characters of the revision id.",
        )
    return owner


def plan_migration(
    direction: Literal["upgrade", "downgrade"],
    histories: Sequence[BindHistory],
    current: Mapping[str, tuple[str, ...]],
    targets: Mapping[str, str | tuple[str, ...]],
    *,
    all_histories: Sequence[BindHistory] | None = None,
    with_dependencies: bool = False,
    offline: bool = False,
) -> Plan:
    """Plan an upgrade or downgrade of the binds in ``targets``.

    :param histories: every bind that may take part, in registry order.
    :param current: each bind's current heads (from its version table).
    :param targets: the per-bind targets from :func:`resolve_target`.
    :param all_histories: every bind of the app, for checking cross-bind dependencies
        on binds that are not selected. Defaults to ``histories``.
    :param with_dependencies: upgrade other binds as far as needed to satisfy
        dependencies on them instead of refusing.
    :param offline: for ``--sql``: the state of binds outside the plan is unknown, so
        dependencies on them are assumed satisfied (the order within the plan is kept).
    """
    everyone = {h.name: h for h in (all_histories or histories)}
    everyone.update({h.name: h for h in histories})
    order = [h.name for h in (all_histories or histories)]
    per_bind: dict[str, list[Step]] = {}
    for name, target in targets.items():
        per_bind[name] = bind_steps(
            direction,
            everyone[name],
            current.get(name, ()),
            target,
            others=everyone.values(),
        )

    edges = _cross_bind_edges(direction, everyone, current, per_bind, with_dependencies, offline)
    steps = _interleave(order, per_bind, edges)
    unchanged = tuple(name for name in order if name in targets and not per_bind.get(name))
    start = {name: tuple(current.get(name, ())) for name in order if name in per_bind}
    links = tuple(sorted({(a[0], b[0]) for a, b in edges if a[0] != b[0]}))
    return Plan(
        direction=direction, steps=tuple(steps), start=start, unchanged=unchanged, links=links
    )


def bind_steps(
    direction: Literal["upgrade", "downgrade"],
    history: BindHistory,
    heads: tuple[str, ...],
    target: str | tuple[str, ...],
    *,
    others: Iterable[BindHistory] = (),
) -> list[Step]:
    """One bind's own steps from ``heads`` to ``target``, ignoring other binds.

    :param others: the other binds' histories, to name the owner of a revision that
        this bind's version table holds but its history does not.
    """
    rmap = history.revision_map
    _check_known_heads(history, heads, others)
    try:
        if direction == "upgrade":
            revs = list(reversed(list(rmap.iterate_revisions(target, heads, implicit_base=True))))
        else:
            revs = list(rmap.iterate_revisions(heads, target, select_for_downgrade=True))
    except _alembic().MultipleHeads:
        raise MultipleHeadsError(
            f"Bind {history.name!r} has several heads ({', '.join(sorted(rmap.heads))}); "
            f"{target!r} does not say which one to use.",
            bind=history.name,
            revision=str(target),
            hint=f"Merge them with 'flask db merge --bind {history.name}', or give one head's id.",
        ) from None
    except _alembic().RangeNotAncestorError:
        other = "downgrade" if direction == "upgrade" else "upgrade"
        raise RevisionError(
            f"Bind {history.name!r} is at {', '.join(heads) or 'base'}, so {target!r} is not a "
            f"valid {direction} target.",
            bind=history.name,
            revision=str(target),
            hint=f"Did you mean 'flask db {other} {target}'?",
        ) from None
    except _alembic().RevisionError as exc:
        raise RevisionError(
            f"Cannot {direction} bind {history.name!r} to {target!r}: {exc}.",
            bind=history.name,
            revision=str(target),
            hint="Run 'flask db log --bind " + history.name + "' to see its revisions.",
        ) from None

    steps: list[Step] = []
    for rev in revs:
        down = tuple(to_tuple(rev.down_revision, default=()))
        path = getattr(rev, "path", None)
        message = getattr(rev, "doc", "") or ""
        if direction == "upgrade":
            steps.append(
                Step(history.name, "upgrade", rev.revision, down, (rev.revision,), message, path)
            )
        else:
            steps.append(
                Step(history.name, "downgrade", rev.revision, (rev.revision,), down, message, path)
            )
    return steps


def _known(history: BindHistory, rev_id: str) -> bool:
    try:
        return history.revision_map.get_revision(rev_id) is not None
    except _alembic().RevisionError:
        return False


def _check_known_heads(
    history: BindHistory, heads: Iterable[str], others: Iterable[BindHistory] = ()
) -> None:
    """Refuse a version table holding revisions that are not in the bind's history."""
    others = list(others)
    for head in heads:
        if _known(history, head):
            continue
        _check_not_foreign(history, head, others)
        raise RevisionError(
            f"Bind {history.name!r} is at revision {head!r}, which is not in its "
            "migration scripts.",
            bind=history.name,
            revision=head,
            hint=(
                "Restore the missing revision file, or if the database really matches a "
                f"known revision, record that with 'flask db stamp --bind {history.name} REV'."
            ),
        )


def _check_not_foreign(history: BindHistory, head: str, others: Iterable[BindHistory]) -> None:
    """Refuse a version table holding a revision of another bind's history."""
    owner = next((o for o in others if o.name != history.name and _known(o, head)), None)
    if owner is None:
        return
    # No stamp or upgrade is suggested: the database is probably another bind's.
    raise RevisionError(
        f"Bind {history.name!r} is at revision {head!r}, which belongs to bind "
        f"{owner.name!r}: the two binds' database URLs may be swapped, or this database "
        "was migrated with another history (such as a multi-database Flask-Migrate "
        "project, where every database records the same revision).",
        bind=history.name,
        revision=head,
        hint=f"Check the database URLs of binds {history.name!r} and {owner.name!r}.",
    )


def _cross_bind_edges(
    direction: Literal["upgrade", "downgrade"],
    histories: Mapping[str, BindHistory],
    current: Mapping[str, tuple[str, ...]],
    per_bind: dict[str, list[Step]],
    with_dependencies: bool,
    offline: bool = False,
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Edges ``(before, after)`` between steps of different binds; may add steps."""
    edges: list[tuple[tuple[str, str], tuple[str, str]]] = []
    applied = {name: histories[name].applied(current.get(name, ())) for name in histories}

    if direction == "upgrade":
        pending = [(s.bind, s.revision) for steps in per_bind.values() for s in steps]
        while pending:
            bind, rev_id = pending.pop(0)
            assert rev_id is not None
            for dep_bind, dep_rev in histories[bind].foreign_dependencies.get(rev_id, ()):
                if dep_rev in applied.get(dep_bind, set()):
                    continue
                planned = {s.revision for s in per_bind.get(dep_bind, [])}
                if dep_rev not in planned:
                    if offline and not with_dependencies:
                        continue
                    if not with_dependencies:
                        raise PlanError(
                            f"Revision {rev_id} of bind {bind!r} depends on revision {dep_rev} "
                            f"of bind {dep_bind!r}, which is not applied there.",
                            bind=bind,
                            revision=rev_id,
                            hint=(
                                f"Upgrade it first with 'flask db upgrade --bind {dep_bind}', or "
                                "add --with-dependencies to apply it as part of this run."
                            ),
                        )
                    extra = bind_steps(
                        "upgrade", histories[dep_bind], current.get(dep_bind, ()), dep_rev
                    )
                    have = per_bind.setdefault(dep_bind, [])
                    known = {s.revision for s in have}
                    new = [s for s in extra if s.revision not in known]
                    # Keep the bind's steps in history order: new ones come before later ones.
                    have[:0] = new
                    pending.extend((s.bind, s.revision) for s in new)
                edges.append(((dep_bind, dep_rev), (bind, rev_id)))
    else:
        downgraded = {(s.bind, s.revision) for steps in per_bind.values() for s in steps}
        for name, history in histories.items():
            for rev_id, deps in history.foreign_dependencies.items():
                for dep_bind, dep_rev in deps:
                    if (dep_bind, dep_rev) not in downgraded:
                        continue
                    if (name, rev_id) in downgraded:
                        edges.append(((name, rev_id), (dep_bind, dep_rev)))
                    elif rev_id in applied.get(name, set()) and not offline:
                        raise PlanError(
                            f"Cannot downgrade revision {dep_rev} of bind {dep_bind!r}: revision "
                            f"{rev_id} of bind {name!r} depends on it and is still applied.",
                            bind=dep_bind,
                            revision=dep_rev,
                            hint=f"Downgrade bind {name!r} below revision {rev_id} first.",
                        )
    return edges


def _interleave(
    order: Sequence[str],
    per_bind: Mapping[str, list[Step]],
    edges: Sequence[tuple[tuple[str, str], tuple[str, str]]],
) -> list[Step]:
    """Merge the per-bind queues so every edge's first step runs before its second."""
    waits: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for before, after in edges:
        waits.setdefault(after, set()).add(before)
    queues = {name: list(per_bind.get(name, [])) for name in order if per_bind.get(name)}
    done: set[tuple[str, str]] = set()
    result: list[Step] = []
    while queues:
        progressed = False
        for name in list(queues):
            queue = queues[name]
            # Run as many steps of this bind as are ready, to keep each bind's work together.
            while queue:
                step = queue[0]
                key = (step.bind, step.revision or "")
                if waits.get(key, set()) - done:
                    break
                result.append(queue.pop(0))
                done.add(key)
                progressed = True
            if not queue:
                del queues[name]
        if not progressed:
            blocked = [f"{q[0].bind}:{q[0].revision}" for q in queues.values()]
            raise PlanError(
                "The revisions form a dependency cycle across binds: "
                + " -> ".join(blocked + blocked[:1])
                + ".",
                hint="Remove one of the depends_on entries that close the cycle.",
            )
    return result


def plan_stamp(
    histories: Sequence[BindHistory],
    current: Mapping[str, tuple[str, ...]],
    targets: Mapping[str, str | tuple[str, ...]],
    *,
    purge: bool = False,
    others: Sequence[BindHistory] = (),
) -> Plan:
    """Plan recording ``targets`` in each bind's version table without running code.

    :param others: every bind's history: a version table holding another bind's
        revision is refused (the URLs may be swapped), unless ``purge`` says to empty it.
    """
    steps: list[Step] = []
    unchanged: list[str] = []
    for history in histories:
        if history.name not in targets:
            continue
        target = targets[history.name]
        heads = tuple(current.get(history.name, ()))
        destination = _stamp_destination(history, target, heads)
        # Stamping is how a version table holding an unknown revision gets repaired:
        # such a table is emptied first instead of being read as a history.
        unknown = [h for h in heads if not _known(history, h)]
        if not purge:
            for head in unknown:
                _check_not_foreign(history, head, others)
        wipe = purge or bool(unknown)
        if not wipe and set(destination) <= set(heads) and bool(destination) == bool(heads):
            unchanged.append(history.name)
            continue
        steps.append(Step(history.name, "stamp", None, heads, destination, "", None, wipe))
    start = {h.name: tuple(current.get(h.name, ())) for h in histories if h.name in targets}
    return Plan(direction="stamp", steps=tuple(steps), start=start, unchanged=tuple(unchanged))


def _stamp_destination(
    history: BindHistory, target: str | tuple[str, ...], heads: tuple[str, ...]
) -> tuple[str, ...]:
    rmap = history.revision_map
    if target == "base":
        return ()
    if isinstance(target, str) and _RELATIVE.match(target.rpartition("@")[2]):
        raise RevisionError(
            f"Cannot stamp bind {history.name!r} with the relative target {target!r}.",
            bind=history.name,
            revision=target,
            hint="Stamp a revision id, 'heads' or 'base' instead.",
        )
    try:
        revs = rmap.get_revisions(target)
    except _alembic().MultipleHeads:
        raise MultipleHeadsError(
            f"Bind {history.name!r} has several heads ({', '.join(sorted(rmap.heads))}).",
            bind=history.name,
            revision=str(target),
            hint=f"Stamp one of them by id, or merge with 'flask db merge --bind {history.name}'.",
        ) from None
    except _alembic().RevisionError as exc:
        raise RevisionError(
            f"Cannot stamp bind {history.name!r} with {target!r}: {exc}.",
            bind=history.name,
            revision=str(target),
            hint=f"Run 'flask db log --bind {history.name}' to see its revisions.",
        ) from None
    return tuple(r.revision for r in revs if isinstance(r, _alembic().Revision))
