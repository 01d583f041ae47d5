"""The errors Flask-Alembic raises.

Every error carries structured fields (the bind, revision or path it is about) and a
one-line message that says what went wrong and how to fix it. The CLI turns them into
exit codes in one place; the Python API lets them propagate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .planner import MigrationResult

__all__ = [
    "AmbiguousTargetError",
    "BindNotManagedError",
    "ConfigurationError",
    "DatabaseError",
    "FlaskAlembicError",
    "LockTimeoutError",
    "MigrationFailedError",
    "MigrationInterruptedError",
    "MultipleHeadsError",
    "NotUpToDateError",
    "PlanError",
    "RevisionError",
    "ScriptDirectoryError",
    "UnknownBindError",
]


class FlaskAlembicError(Exception):
    """Base class of every error raised by Flask-Alembic."""

    #: Whether the CLI reports this error as a usage error (exit code 2).
    usage_error: bool = False

    def __init__(
        self,
        message: str,
        *,
        bind: str | None = None,
        revision: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.bind = bind
        self.revision = revision
        self.path = path
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            if text and text[-1] not in ".!?:":
                text += "."
            text = f"{text} {' '.join(self.hint.split())}"
        return text


class ConfigurationError(FlaskAlembicError):
    """The extension or the app is configured in a way that cannot work."""


class UnknownBindError(FlaskAlembicError):
    """A bind name was given that is not registered."""

    usage_error = True


class BindNotManagedError(UnknownBindError):
    """A bind was named that exists but is not migrated (no models, or excluded)."""


class ScriptDirectoryError(FlaskAlembicError):
    """The migrations directory or a revision file in it cannot be used."""

    @classmethod
    def for_duplicate_id(cls, rev_id: str, first: str, second: str) -> ScriptDirectoryError:
        """Two revision files with one id: Alembic would silently use only one of them."""
        return cls(
            f"Revision id {rev_id!r} is used by two files, {first} and {second}; only one "
            "of them would ever run.",
            revision=rev_id,
            path=second,
            hint="Give one of them a new id (its 'revision' variable, and every "
            "down_revision or depends_on naming it), or delete the copy.",
        )


class RevisionError(FlaskAlembicError):
    """A revision or target could not be resolved."""


class AmbiguousTargetError(RevisionError):
    """A relative target was given while several binds are selected."""

    usage_error = True


class MultipleHeadsError(RevisionError):
    """A bind has several heads where one was needed."""


class NotUpToDateError(FlaskAlembicError):
    """A bind's database must be at its heads for this command."""


class PlanError(FlaskAlembicError):
    """The requested migration cannot be planned."""


class DatabaseError(FlaskAlembicError):
    """A database could not be reached or refused a statement."""


class MigrationFailedError(FlaskAlembicError):
    """A migration step failed while running a plan.

    :attr:`result` describes the steps that were applied before the failure.
    """

    def __init__(
        self, message: str, *, result: MigrationResult | None = None, **kwargs: str | None
    ) -> None:
        super().__init__(message, **kwargs)
        self.result: MigrationResult | None = result


class LockTimeoutError(FlaskAlembicError):
    """Another process held a bind's migration lock for longer than the timeout."""


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
        **kwargs: str | None,
    ) -> None:
        super().__init__(message, result=result, **kwargs)
        self.exit_code = exit_code
