"""One bind's history as a value, and the pure questions asked of histories.

Resolving a user's target to each bind's own terms, the ranges behind ``log``, the one
revision ``show`` names, branch points, the heads a ``merge`` joins, and which binds a
bind's cross-bind dependencies reach. Nothing here opens a connection, reads a file or
prints; Alembic's revision module is imported on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from types import ModuleType
from typing import TYPE_CHECKING

from .errors import AmbiguousTargetError
from .errors import Command
from .errors import RevisionError
from .errors import UnknownBindError
from .plan import Direction
from .plan import Target
from .plan import to_tuple

if TYPE_CHECKING:
    from alembic.script.revision import Revision
    from alembic.script.revision import RevisionMap

__all__ = [
    "SYMBOLIC",
    "BindHistory",
    "Owner",
    "branch_points",
    "is_relative",
    "log_ids",
    "log_ranges",
    "merge_bind",
    "merge_ids",
    "owner_in",
    "related_binds",
    "resolve_target",
    "revision_ids",
    "revision_module",
    "show_id",
]

_RELATIVE = re.compile(r"^[+-]\d+$")
_DIGITS = re.compile(r"^\d+$")
#: Names the bind a revision id belongs to, or ``None``.
Owner = Callable[[str], "str | None"]
#: Targets that name a position in every bind's history rather than one revision.
SYMBOLIC = frozenset({"heads", "head", "base"})


def revision_module() -> ModuleType:
    """Alembic's revision module, imported on first use: it is slow to import."""
    from alembic.script import revision

    return revision


def is_relative(target: str) -> bool:
    """Whether ``target`` counts steps (``+2``, ``-1``) rather than naming a revision."""
    return bool(_RELATIVE.match(target))


@dataclass(frozen=True)
class BindHistory:
    """One bind's revisions, and the revisions of other binds they depend on."""

    name: str
    revision_map: RevisionMap
    #: revision id -> ((other bind, revision id), ...) it depends on.
    foreign_dependencies: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(self.revision_map.heads)

    def get(self, rev_id: str) -> Revision:
        rev = self.revision_map.get_revision(rev_id)
        assert rev is not None
        return rev

    def known(self, rev_id: str) -> bool:
        """Whether ``rev_id`` is a revision of this bind."""
        try:
            return self.revision_map.get_revision(rev_id) is not None
        except revision_module().RevisionError:
            return False

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
            stack.extend(to_tuple(rev.down_revision))
            for token in to_tuple(rev.dependencies):
                dep = self.revision_map.get_revision(token)
                if dep is not None:
                    stack.append(dep.revision)
        return seen

    def check_heads(self, heads: Iterable[str], owner_of: Owner | None = None) -> None:
        """Refuse a version table holding revisions that are not in this bind's history.

        :param owner_of: names the bind a revision id belongs to, if any, so that a
            revision of another bind is reported as such.
        """
        for head in heads:
            if self.known(head):
                continue
            self.check_not_foreign(head, owner_of)
            raise RevisionError(
                f"Bind {self.name!r} is at revision {head!r}, which is not in its "
                "migration scripts.",
                bind=self.name,
                revision=head,
                hint=(
                    "Restore the missing revision file, or if the database really matches a "
                    "known revision, record that with ",
                    Command("stamp", "--bind", self.name, "REV"),
                    ".",
                ),
            )

    def check_not_foreign(self, head: str, owner_of: Owner | None) -> None:
        """Refuse a version table holding a revision of another bind's history."""
        owner = owner_of(head) if owner_of is not None else None
        if owner is None or owner == self.name:
            return
        # No stamp or upgrade is suggested: the database is probably another bind's.
        raise RevisionError(
            f"Bind {self.name!r} is at revision {head!r}, which belongs to bind "
            f"{owner!r}: the two binds' database URLs may be swapped, or this database "
            "was migrated with another history (such as a multi-database Flask-Migrate "
            "project, where every database records the same revision).",
            bind=self.name,
            revision=head,
            hint=f"Check the database URLs of binds {self.name!r} and {owner!r}.",
        )


def owner_in(histories: Iterable[BindHistory]) -> Owner:
    """An :data:`Owner` that looks ``histories`` up."""
    found = list(histories)

    def owner_of(rev_id: str) -> str | None:
        return next((h.name for h in found if h.known(rev_id)), None)

    return owner_of


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

    if target in SYMBOLIC:
        return dict.fromkeys(names, target)
    given = target

    if "@" in target:
        # A bind's name may hold "@" itself: 'a@b@head' is bind 'a@b' even when 'a' exists.
        bind = max((n for n in names if target.startswith(n + "@")), key=len, default=None)
        if bind is not None:
            rest = target[len(bind) + 1 :]
            _refuse_zero_steps(rest, given, direction)
            return {bind: rest}
        owner = _owner(target.partition("@")[0], histories, whole=target)
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
        if direction == "stamp" and len(histories) != 1:
            # Naming one bind would not help: a stamp takes no count.
            raise RevisionError(
                f"Cannot stamp the relative target {given!r}: a stamp records revisions, "
                "it does not count steps.",
                revision=given,
                hint="Stamp a revision id, 'BIND@REV', 'heads' or 'base' instead.",
            )
        if len(histories) != 1:
            # Quote the target as the user wrote it: "1" is not "-1" to them.
            raise AmbiguousTargetError(
                f"The relative target {given!r} is ambiguous with several binds selected "
                f"({', '.join(names)}).",
                revision=given,
                hint=f"Name one bind with --bind {names[0]} (or another), or give the "
                f"target as '{names[0]}@{target}'.",
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
        except revision_module().RevisionError:
            return False
        return rev is not None and rev.revision == token
    return history.name in _owners(token, [history])


def revision_ids(rmap: RevisionMap, target: str | tuple[str, ...]) -> tuple[str, ...]:
    """The full ids of the revisions ``target`` names in ``rmap``."""
    return tuple(
        r.revision for r in rmap.get_revisions(target) if isinstance(r, revision_module().Revision)
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
        except (revision_module().ResolutionError, revision_module().MultipleHeads):
            # unknown here, or an ambiguous prefix within this bind
            if _ambiguous_in(history, token):
                owners.append(history.name)
    return owners


def _ambiguous_in(history: BindHistory, token: str) -> bool:
    """Whether ``token`` is the start of several ids, and not itself an id."""
    if _has_revision(history, token, prefix=False):
        return False  # an exact id wins over the longer ids it starts
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
        raise RevisionError.unknown(whole, (h.name for h in histories))
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


def log_ranges(
    histories: Sequence[BindHistory], start: str, end: str
) -> list[tuple[BindHistory, str, str]]:
    """Each bind's ``(history, lower, upper)`` range between ``start`` and ``end``.

    A bound that names one bind's revision limits the listing to that bind.
    """
    if start == "base" and end == "heads":
        return [(h, "base", "heads") for h in histories]
    lower = resolve_target(start, histories, direction="downgrade") if start != "base" else {}
    upper = resolve_target(end, histories, direction="upgrade") if end != "heads" else {}
    ranges = []
    for h in histories:
        if (lower and h.name not in lower) or (upper and h.name not in upper):
            continue
        ranges.append((h, str(lower.get(h.name, "base")), str(upper.get(h.name, "heads"))))
    return ranges


def log_ids(history: BindHistory, lower: str, upper: str) -> list[str]:
    """The ids from ``upper`` down to ``lower``, both included, newest first."""
    try:
        revs = history.revision_map.iterate_revisions(
            upper, lower, inclusive=True, assert_relative_length=False
        )
        return [rev.revision for rev in revs]
    except revision_module().RevisionError as exc:
        raise RevisionError(
            f"Cannot list bind {history.name!r} from {lower!r} to {upper!r}: {exc}.",
            bind=history.name,
            hint=("Check the --start and --end revisions with ", Command("heads"), "."),
        ) from None


def show_id(histories: Sequence[BindHistory], revision: str) -> tuple[str, str]:
    """The bind and full id of the one revision that ``revision`` names."""
    owner, target = next(iter(resolve_target(revision, histories, direction="upgrade").items()))
    rmap = next(h for h in histories if h.name == owner).revision_map
    try:
        revs = revision_ids(rmap, target)
    except revision_module().RevisionError as exc:
        raise RevisionError(
            f"Cannot show {revision!r} in bind {owner!r}: {exc}.",
            bind=owner,
            revision=revision,
            hint=("Give a revision id; see ", Command("log"), "."),
        ) from None
    if len(revs) != 1:
        raise RevisionError(
            f"{revision!r} names {len(revs)} revisions in bind {owner!r}, not one.",
            bind=owner,
            revision=revision,
            hint="Give a single revision id.",
        )
    return owner, revs[0]


def branch_points(history: BindHistory) -> list[str]:
    """The revisions of ``history`` with more than one child, newest first."""
    rmap = history.revision_map
    return [
        rev.revision for rev in rmap.iterate_revisions(rmap.heads, "base") if len(rev.nextrev) > 1
    ]


def merge_bind(histories: Sequence[BindHistory], tokens: Sequence[str]) -> str:
    """The one bind whose revisions ``tokens`` (or, for ``heads``, whose heads) a merge joins."""
    if list(tokens) in (["heads"], ["head"]):
        candidates = [h.name for h in histories if len(h.revision_map.heads) > 1]
        if not candidates:
            raise RevisionError(
                "Nothing to merge: every bind has a single head.",
                hint="Give the revisions to merge explicitly.",
            )
        if len(candidates) > 1:
            raise UnknownBindError(
                f"Several binds have more than one head: {', '.join(candidates)}.",
                hint=(
                    "Merge each with --bind, repeated: ",
                    Command("merge", *(a for name in candidates for a in ("--bind", name))),
                    " writes one merge revision per bind.",
                ),
            )
        return candidates[0]
    owners = {next(iter(resolve_target(t, histories, direction="upgrade"))) for t in tokens}
    if len(owners) > 1:
        raise RevisionError(
            f"Cannot merge revisions of different binds ({', '.join(sorted(owners))}).",
            hint="A merge joins heads of one bind's history.",
        )
    return owners.pop()


def merge_ids(history: BindHistory, tokens: Sequence[str]) -> list[str]:
    """The two or more revision ids of ``history`` that ``tokens`` name, for a merge."""
    ids: list[str] = []
    for token in tokens:
        if token in {"heads", "head"}:
            ids.extend(history.revision_map.heads)
        else:
            target = resolve_target(token, [history], direction="upgrade")[history.name]
            ids.extend(revision_ids(history.revision_map, target))
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2 and set(tokens) <= {"heads", "head"}:
        raise RevisionError(
            f"Nothing to merge in bind {history.name!r}: it has a single head "
            f"({', '.join(ids) or 'none: no revision yet'}).",
            bind=history.name,
            hint=(
                "A merge joins two or more heads of one bind; ",
                Command("heads"),
                " lists them.",
            ),
        )
    if len(ids) < 2:
        raise RevisionError(
            f"Nothing to merge in bind {history.name!r}: it needs two or more revisions, got "
            f"{', '.join(ids) or 'none'}.",
            bind=history.name,
            hint="Give at least two revision ids, or merge 'heads' when there are several.",
        )
    return ids


def related_binds(
    direction: str, names: Iterable[str], histories: Mapping[str, BindHistory]
) -> set[str]:
    """``names`` plus the binds their cross-bind dependencies reach.

    An upgrade needs the binds depended on; a downgrade, the binds depending on them. Only
    their version tables are read: an unrelated bind that is down does not block.
    """
    related = set(names)
    if direction == "stamp":
        return related
    edges: dict[str, set[str]] = {name: set() for name in histories}
    for name, history in histories.items():
        for deps in history.foreign_dependencies.values():
            for other, _ in deps:
                if direction == "upgrade":
                    edges[name].add(other)
                else:
                    edges[other].add(name)
    stack = list(related)
    while stack:
        for other in edges.get(stack.pop(), ()):
            if other not in related:
                related.add(other)
                stack.append(other)
    return related
