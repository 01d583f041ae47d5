"""The errors Flask-Alembic raises, and the commands their hints suggest.

Every error carries structured fields (the bind, revision or path it is about) and a
one-line message that says what went wrong and how to fix it. A hint that suggests a
command names it as a :class:`Command`, never as a command line: the name the app gave the
command group is applied when the error is rendered, at the edge. The CLI turns errors
into exit codes in one place; the Python API lets them propagate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from typing import ClassVar
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from .plan import MigrationResult

__all__ = [
    "DEFAULT_GROUP",
    "AdoptError",
    "AmbiguousTargetError",
    "BindNotManagedError",
    "Command",
    "ConfigurationError",
    "DatabaseError",
    "FlaskAlembicError",
    "Hint",
    "LintRefusedError",
    "LockLostError",
    "LockTimeoutError",
    "MigrationFailedError",
    "MigrationInterruptedError",
    "MultipleHeadsError",
    "NotUpToDateError",
    "PlanChangedError",
    "PlanError",
    "RevisionError",
    "ScriptDirectoryError",
    "UnknownBindError",
    "VersionTableMismatchError",
]

#: The name the command group has unless the app registers it under another.
DEFAULT_GROUP = "db"


class Command:
    """A command of the group that a hint suggests, such as ``Command("upgrade", "--bind", "x")``.

    Rendered as ``'flask db upgrade --bind x'``, with the group's real name at the edge.
    """

    __slots__ = ("args",)

    def __init__(self, *args: str) -> None:
        self.args = args

    def render(self, group: str = DEFAULT_GROUP) -> str:
        return "'" + " ".join(("flask", group, *self.args)) + "'"

    def __repr__(self) -> str:
        return f"Command{self.args!r}"


#: A hint: plain text, or text and commands to join once the group's name is known.
Hint = str | tuple[str | Command, ...]


def _render_hint(hint: Hint, group: str) -> str:
    if isinstance(hint, str):
        return hint
    return "".join(part if isinstance(part, str) else part.render(group) for part in hint)


class FlaskAlembicError(Exception):
    """Base class of every error raised by Flask-Alembic.

    Each subclass also derives from the type Flask-Alembic 3 raised for the same problem,
    so ``except`` clauses written for it keep working: ``RuntimeError`` for configuration,
    ``KeyError`` for an unknown bind, Alembic's ``CommandError`` for revisions, targets,
    plans and the script directory, SQLAlchemy's ``SQLAlchemyError`` for databases.
    """

    #: The exit code of the ``flask db`` command that fails with this error.
    exit_code: int = 1
    #: Whether instances are also ``alembic.util.CommandError``: added when one is made,
    #: so that importing this module does not import Alembic.
    alembic_command_error: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__new__(_with_command_error(cls) if cls.alembic_command_error else cls)

    def __init__(
        self,
        message: str,
        *,
        bind: str | None = None,
        revision: str | None = None,
        path: str | None = None,
        hint: Hint | None = None,
    ) -> None:
        self.message = message
        self.bind = bind
        self.revision = revision
        self.path = path
        self._hint = hint
        super().__init__(self.render())

    @property
    def hint(self) -> str | None:
        """How to fix it, with commands spelled for the default group name."""
        return None if self._hint is None else _render_hint(self._hint, DEFAULT_GROUP)

    @property
    def usage_error(self) -> bool:
        """Whether the CLI reports this error as a usage error (exit code 2)."""
        return self.exit_code == 2

    def render(self, group: str = DEFAULT_GROUP) -> str:
        """The one-line message, its hint naming commands of the group called ``group``."""
        text = " ".join(self.message.split())
        if self._hint is not None:
            hint = " ".join(_render_hint(self._hint, group).split())
            if text and text[-1] not in ".!?:":
                text += "."
            text = f"{text} {hint}"
        return text

    def __str__(self) -> str:
        return self.render()


#: Each class whose instances are also Alembic's ``CommandError``: the class they are made of.
_COMMAND_ERROR_TYPES: dict[type[FlaskAlembicError], type[FlaskAlembicError]] = {}


def _with_command_error(cls: type[FlaskAlembicError]) -> type[FlaskAlembicError]:
    """``cls`` and Alembic's ``CommandError`` in one class, shown and pickled as ``cls``."""
    found = _COMMAND_ERROR_TYPES.get(cls)
    if found is None:
        from alembic.util import CommandError

        def __reduce__(self: FlaskAlembicError) -> tuple[Any, ...]:
            return (cls, self.args, self.__dict__)

        found = type(
            cls.__name__,
            (cls, CommandError),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "alembic_command_error": False,
                "__reduce__": __reduce__,
            },
        )
        _COMMAND_ERROR_TYPES[cls] = found
    return found


class AdoptError(FlaskAlembicError):
    """A project cannot be adopted as it is: nothing found, or a state that needs a person."""


class ConfigurationError(FlaskAlembicError, RuntimeError):
    """The extension or the app is configured in a way that cannot work."""


class UnknownBindError(FlaskAlembicError, KeyError):
    """A bind name was given that is not registered."""

    exit_code = 2


class BindNotManagedError(UnknownBindError):
    """A bind was named that exists but is not migrated (no models, or excluded)."""


class ScriptDirectoryError(FlaskAlembicError):
    """The migrations directory or a revision file in it cannot be used."""

    alembic_command_error = True

    @classmethod
    def for_duplicate_id(
        cls, rev_id: str, first: str, second: str, *, spelled: str | None = None
    ) -> ScriptDirectoryError:
        """Two revision files with one id: Alembic would silently use only one of them.

        :param spelled: the second file's id, when it differs from ``rev_id`` in case only.
        """
        if spelled is not None and spelled != rev_id:
            return cls(
                f"Revision ids {rev_id!r} and {spelled!r} differ only in case ({first} and "
                f"{second}); MySQL's and MariaDB's version tables store them as one id.",
                revision=spelled,
                path=second,
                hint="Give one of them a new id (its 'revision' variable, and every "
                "down_revision or depends_on naming it).",
            )
        return cls(
            f"Revision id {rev_id!r} is used by two files, {first} and {second}; only one "
            "of them would ever run.",
            revision=rev_id,
            path=second,
            hint="Give one of them a new id (its 'revision' variable, and every "
            "down_revision or depends_on naming it), or delete the copy.",
        )

    @classmethod
    def inconsistent(cls, directory: str, detail: object) -> ScriptDirectoryError:
        """Alembic refused the graph of revisions as a whole."""
        return cls(
            f"The migration scripts in {directory} are inconsistent: {detail}",
            path=directory,
            hint="Fix the down_revision / depends_on of the revision named above.",
        )


class RevisionError(FlaskAlembicError):
    """A revision or target could not be resolved."""

    alembic_command_error = True

    @classmethod
    def unknown(cls, target: str, binds: Iterable[str]) -> RevisionError:
        """No selected bind has a revision ``target`` names."""
        return cls(
            f"Unknown revision {target!r} (looked in bind(s): {', '.join(binds)}).",
            revision=target,
            hint=(
                "Run ",
                Command("log"),
                " to list the revisions, or ",
                Command("heads"),
                " for the heads.",
            ),
        )

    @classmethod
    def refused(cls, bind: str, action: str, target: object, detail: object) -> RevisionError:
        """Alembic refused ``action`` (such as ``"stamp bind 'x' with"``) to ``target``."""
        return cls(
            f"Cannot {action} {str(target)!r}: {detail}.",
            bind=bind,
            revision=str(target),
            hint=("Run ", Command("log", "--bind", bind), " to see its revisions."),
        )


class AmbiguousTargetError(RevisionError):
    """A relative target was given while several binds are selected."""

    exit_code = 2


class MultipleHeadsError(RevisionError):
    """A bind has several heads where one was needed."""

    @classmethod
    def for_bind(
        cls, bind: str, heads: Iterable[str], *, otherwise: str, target: object = None
    ) -> MultipleHeadsError:
        """``bind`` has ``heads``; ``otherwise`` is the way out other than merging them."""
        which = "" if target is None else f"; {str(target)!r} does not say which one to use"
        return cls(
            f"Bind {bind!r} has several heads ({', '.join(sorted(heads))}){which}.",
            bind=bind,
            revision=None if target is None else str(target),
            hint=("Merge them with ", Command("merge", "--bind", bind), f", or {otherwise}."),
        )


class NotUpToDateError(FlaskAlembicError):
    """A bind's database must be at its heads for this command."""

    alembic_command_error = True


class VersionTableMismatchError(NotUpToDateError):
    """A bind's version table says a revision is pending whose tables the database already
    has: the version table is probably misconfigured, and ``upgrade`` would fail."""


class PlanError(FlaskAlembicError):
    """The requested migration cannot be planned."""

    alembic_command_error = True

    #: For a revision that depends on another bind's revision not applied there: that
    #: bind's name (``None`` for the other reasons).
    dependency: str | None = None


class DatabaseError(FlaskAlembicError, sa.exc.SQLAlchemyError):
    """A database could not be reached or refused a statement."""


class MigrationFailedError(FlaskAlembicError):
    """A migration step failed while running a plan.

    :attr:`result` describes the steps that were applied before the failure.
    """

    def __init__(
        self, message: str, *, result: MigrationResult | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.result: MigrationResult | None = result


class PlanChangedError(MigrationFailedError, PlanError):
    """A bind moved (another process migrated it) after the plan was made; the steps
    already applied are in :attr:`result`."""


class LockTimeoutError(FlaskAlembicError):
    """Another process held a bind's migration lock for longer than the timeout."""

    @classmethod
    def for_bind(cls, bind: str, timeout: float, holder: str) -> LockTimeoutError:
        """``bind``'s lock, held by ``holder`` (if the database can say), not had in time."""
        who = f" ({holder})" if holder else ""
        return cls(
            f"Timed out after {timeout:g}s waiting for the migration lock of bind {bind!r}"
            f"{who}: another process is migrating it.",
            bind=bind,
            hint=(
                "Wait for it to finish, or raise the wait with --lock-timeout / "
                "ALEMBIC_LOCK_TIMEOUT."
            ),
        )


class MigrationInterruptedError(MigrationFailedError):
    """SIGINT or SIGTERM stopped a run between two steps.

    :attr:`exit_code` is the conventional ``128 + signal number``.
    """

    def __init__(
        self,
        message: str,
        *,
        result: MigrationResult | None = None,
        exit_code: int = 130,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, result=result, **kwargs)
        self.exit_code = exit_code


class LockLostError(FlaskAlembicError):
    """A bind's migration lock was found no longer held while its steps ran."""

    @classmethod
    def for_bind(cls, bind: str) -> LockLostError:
        """The lock of ``bind`` is gone: its connection was closed under the run."""
        return cls(
            f"Lost the migration lock of bind {bind!r}: the lock's connection was closed by "
            "the server or the network, so another process may be migrating the database "
            "now; the step was stopped before its version row was written, and rolled back "
            "where the database can roll back.",
            bind=bind,
            hint=(
                "Wait until no other process migrates it (",
                Command("status"),
                " no longer says 'migrating'), check the step's changes on databases that "
                "cannot roll back schema changes, then run the command again; if a proxy or "
                "firewall drops idle connections, raise its idle timeout.",
            ),
        )


class LintRefusedError(FlaskAlembicError):
    """``ALEMBIC_LINT = "refuse"``: an upgrade's plan runs a revision with an error finding
    that its ``lint_allow`` does not accept, so nothing ran, on any bind.

    :attr:`findings` are the refused findings, of every revision of the plan.
    """

    def __init__(self, message: str, *, findings: Iterable[Any] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: The ``flask_alembic.lint.Finding`` values refused (not imported here: errors
        #: sit below every module).
        self.findings: tuple[Any, ...] = tuple(findings)

    @classmethod
    def for_findings(cls, findings: Iterable[Any]) -> LintRefusedError:
        """Refuse the plan for ``findings`` (unaccepted: errors, and ``offline-failure``
        warnings); the message names the first revision they are in, its bind and its
        rules."""
        found = list(findings)
        first = found[0]
        rules = list(dict.fromkeys(f.rule for f in found if f.revision == first.revision))
        others = {(f.bind, f.revision) for f in found} - {(first.bind, first.revision)}
        more = f" (and {len(others)} more revision{'s' * (len(others) != 1)})" if others else ""
        where = first.path or f"revision {first.revision}'s file"
        example = ", ".join(f'"{rule}": "..."' for rule in rules)
        kind = "error" if all(f.severity == "error" for f in found) else "finding"
        return cls(
            f"Refused to upgrade: revision {first.revision} of bind {first.bind!r} has "
            f"unaccepted lint {kind}{'s' * (len(rules) != 1)} {', '.join(rules)}{more}; "
            "nothing was run.",
            bind=first.bind,
            revision=first.revision,
            path=first.path,
            findings=found,
            hint=(
                f"Make the change safely, or accept it with lint_allow = {{{example}}} "
                f'(each with its reason) in {where}, or set ALEMBIC_LINT = "warn"; ',
                Command("lint", first.revision),
                " shows each finding and its fix.",
            ),
        )
