"""Pure planning: revision histories + current heads + a target -> an ordered ``Plan``.

Nothing here opens a connection, reads a file or prints. Each bind's history is an
Alembic :class:`~alembic.script.revision.RevisionMap` holding only that bind's revisions;
dependencies between binds are given separately, because they mean "apply that revision
on its own database first", never "run it here".
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Literal

from .errors import Command
from .errors import MultipleHeadsError
from .errors import PlanError
from .errors import RevisionError
from .history import BindHistory
from .history import is_relative
from .history import Owner
from .history import owner_in
from .history import revision_module
from .plan import Plan
from .plan import Step
from .plan import to_tuple

__all__ = ["bind_steps", "plan_migration", "plan_stamp"]


def plan_migration(
    direction: Literal["upgrade", "downgrade"],
    histories: Sequence[BindHistory],
    current: Mapping[str, tuple[str, ...]],
    targets: Mapping[str, str | tuple[str, ...]],
    *,
    all_histories: Sequence[BindHistory] | None = None,
    with_dependencies: bool = False,
    offline: bool = False,
    owner_of: Owner | None = None,
    spelled: str | None = None,
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
    :param owner_of: names the bind of a revision that a version table holds but its
        bind's history does not; by default, looked up in ``all_histories``.
    :param spelled: the target as the user wrote it (``1`` for ``-1``), for messages.
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
            owner_of=owner_of or owner_in(everyone.values()),
            spelled=spelled,
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
    owner_of: Owner | None = None,
    spelled: str | None = None,
) -> list[Step]:
    """One bind's own steps from ``heads`` to ``target``, ignoring other binds.

    :param owner_of: names the bind of a revision that this bind's version table holds
        but its history does not.
    :param spelled: the target as the user wrote it, for messages.
    """
    rmap = history.revision_map
    history.check_heads(heads, owner_of)
    shown = spelled if spelled is not None else str(target)
    try:
        if direction == "upgrade":
            revs = list(reversed(list(rmap.iterate_revisions(target, heads, implicit_base=True))))
        else:
            revs = list(rmap.iterate_revisions(heads, target, select_for_downgrade=True))
    except revision_module().MultipleHeads:
        raise MultipleHeadsError.for_bind(
            history.name, rmap.heads, target=shown, otherwise="give one head's id"
        ) from None
    except revision_module().RangeNotAncestorError:
        other = "downgrade" if direction == "upgrade" else "upgrade"
        raise RevisionError(
            f"Bind {history.name!r} is at {', '.join(heads) or 'base'}, so {shown!r} is not a "
            f"valid {direction} target.",
            bind=history.name,
            revision=shown,
            hint=("Did you mean ", Command(other, "--bind", history.name, shown), "?"),
        ) from None
    except revision_module().RevisionError as exc:
        if isinstance(target, str) and is_relative(target):
            raise _too_many_steps(direction, history, heads, target, shown) from None
        action = f"{direction} bind {history.name!r} to"
        raise RevisionError.refused(history.name, action, shown, exc) from None

    steps: list[Step] = []
    for rev in revs:
        down = to_tuple(rev.down_revision)
        source: tuple[str, ...]
        destination: tuple[str, ...]
        path = getattr(rev, "path", None)
        message = getattr(rev, "doc", "") or ""
        if direction == "upgrade":
            source, destination = down, (rev.revision,)
        else:
            source, destination = (rev.revision,), down
        steps.append(
            Step(
                bind=history.name,
                direction=direction,
                revision=rev.revision,
                source=source,
                destination=destination,
                message=message,
                path=path,
            )
        )
    return steps


def _too_many_steps(
    direction: Literal["upgrade", "downgrade"],
    history: BindHistory,
    heads: tuple[str, ...],
    target: str,
    shown: str,
) -> RevisionError:
    """A count of steps that goes past base (downgrade) or past the heads (upgrade)."""
    rmap = history.revision_map
    if direction == "upgrade":
        room = len(list(rmap.iterate_revisions("heads", heads, implicit_base=True)))
        end, way_out = "its heads", "'heads'"
    else:
        room = len(list(rmap.iterate_revisions(heads, "base", select_for_downgrade=True)))
        end, way_out = "base", "'base'"
    action = f"Cannot {direction} bind {history.name!r} by {shown!r}"
    if not room:
        return RevisionError(
            f"{action}: it is at {end} already.",
            bind=history.name,
            revision=shown,
            hint=("See where it stands with ", Command("status", "--bind", history.name), "."),
        )
    return RevisionError(
        f"{action}: it is at {', '.join(heads) or 'base'}, {room} step{'s' * (room != 1)} "
        f"from {end}, not {abs(int(target))}.",
        bind=history.name,
        revision=shown,
        hint=f"Give a count of {room} or fewer, or {way_out}.",
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
                        error = PlanError(
                            f"Revision {rev_id} of bind {bind!r} depends on revision {dep_rev} "
                            f"of bind {dep_bind!r}, which is not applied there.",
                            bind=bind,
                            revision=rev_id,
                            hint=(
                                "Upgrade it first with ",
                                Command("upgrade", "--bind", dep_bind),
                                ", or add --with-dependencies to apply it as part of this run.",
                            ),
                        )
                        error.dependency = dep_bind
                        raise error
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
    owner_of: Owner | None = None,
    spelled: str | None = None,
) -> Plan:
    """Plan recording ``targets`` in each bind's version table without running code.

    :param owner_of: names the bind a revision belongs to: a version table holding
        another bind's revision is refused (the URLs may be swapped), unless ``purge``
        says to empty it.
    :param spelled: the target as the user wrote it, for messages.
    """
    steps: list[Step] = []
    unchanged: list[str] = []
    for history in histories:
        if history.name not in targets:
            continue
        target = targets[history.name]
        heads = tuple(current.get(history.name, ()))
        destination = _stamp_destination(history, target, spelled)
        # Stamping is how a version table holding an unknown revision gets repaired:
        # such a table is emptied first instead of being read as a history.
        unknown = [h for h in heads if not history.known(h)]
        if not purge:
            for head in unknown:
                history.check_not_foreign(head, owner_of)
        wipe = purge or bool(unknown)
        if not wipe and set(destination) <= set(heads) and bool(destination) == bool(heads):
            unchanged.append(history.name)
            continue
        steps.append(
            Step(
                bind=history.name,
                direction="stamp",
                revision=None,
                source=heads,
                destination=destination,
                purge=wipe,
            )
        )
    start = {h.name: tuple(current.get(h.name, ())) for h in histories if h.name in targets}
    return Plan(direction="stamp", steps=tuple(steps), start=start, unchanged=tuple(unchanged))


def _stamp_destination(
    history: BindHistory, target: str | tuple[str, ...], spelled: str | None = None
) -> tuple[str, ...]:
    rmap = history.revision_map
    if target == "base":
        return ()
    shown = spelled if spelled is not None else str(target)
    if isinstance(target, str) and is_relative(target.rpartition("@")[2]):
        raise RevisionError(
            f"Cannot stamp bind {history.name!r} with the relative target {shown!r}.",
            bind=history.name,
            revision=shown,
            hint="Stamp a revision id, 'heads' or 'base' instead.",
        )
    try:
        revs = rmap.get_revisions(target)
    except revision_module().MultipleHeads:
        raise MultipleHeadsError.for_bind(
            history.name, rmap.heads, otherwise="stamp one of them by id"
        ) from None
    except revision_module().RevisionError as exc:
        action = f"stamp bind {history.name!r} with"
        raise RevisionError.refused(history.name, action, shown, exc) from None
    return tuple(r.revision for r in revs if isinstance(r, revision_module().Revision))
