"""Server-side timeouts for migration steps: a bind's ``timeouts``, a revision's override,
and the statements that put them in force.

On PostgreSQL each step starts with ``SET LOCAL lock_timeout`` / ``statement_timeout``:
they end with the step's transaction. On MariaDB and MySQL, whose schema changes are not
transactional, each step starts with ``SET SESSION lock_wait_timeout``; online, the
executor closes the connection after the run (no pooled connection keeps it), and offline
SQL ends by setting it back to ``DEFAULT``.
A value of ``None`` is the server's own setting.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .config import timeout_problem
from .errors import ScriptDirectoryError

if TYPE_CHECKING:
    from .registry import Bind

__all__ = ["ATTRIBUTE", "StepTimeouts", "effective", "override", "statement"]

#: The name of the module-level dict a revision file overrides its bind's timeouts with.
ATTRIBUTE = "timeouts"


def effective(bind: Bind, module: types.ModuleType | None) -> dict[str, float | None]:
    """The timeouts a step of ``bind`` runs with: the bind's, with the revision
    ``module``'s ``timeouts`` (``None``: no module) replacing them key by key.

    Raises :class:`ScriptDirectoryError`, naming the file, for a bad override.
    """
    result = dict(bind.timeouts)
    if module is not None:
        result.update(override(bind, module))
    return result


def override(bind: Bind, module: types.ModuleType) -> dict[str, float | None]:
    """The revision ``module``'s own ``timeouts`` (empty without one), checked for ``bind``."""
    raw = getattr(module, ATTRIBUTE, None)
    if raw is None:
        return {}
    problem: tuple[str, str] | None
    if not isinstance(raw, Mapping):
        problem = (
            f"it must be a dict of timeouts in seconds, got {raw!r}",
            "For example timeouts = {'lock_timeout': 30}.",
        )
    else:
        problem = next(
            (
                found
                for key, value in raw.items()
                if (found := timeout_problem(key, value, bind.backend)) is not None
            ),
            None,
        )
    if problem is not None:
        path = getattr(module, "__file__", None) or module.__name__
        revision = getattr(module, "revision", None)
        message, fix = problem
        raise ScriptDirectoryError(
            f"Revision file {path} of bind {bind.name!r} sets 'timeouts': {message}.",
            bind=bind.name,
            revision=revision if isinstance(revision, str) else None,
            path=path,
            hint=fix,
        )
    return {key: None if value is None else float(value) for key, value in raw.items()}


def statement(backend: str, key: str, seconds: float | None) -> str:
    """The SQL that sets the timeout ``key`` (``None``: back to the server's own setting)."""
    if backend == "postgresql":
        if seconds is None:
            return f"SET LOCAL {key} = DEFAULT"
        # Whole milliseconds, rounded up: 0 would mean no timeout at all.
        return f"SET LOCAL {key} = '{max(1, math.ceil(round(seconds * 1000, 6)))}ms'"
    if seconds is None:
        return f"SET SESSION {key} = DEFAULT"
    return f"SET SESSION {key} = {max(1, math.ceil(round(seconds, 6)))}"


class StepTimeouts:
    """The timeouts in force while one bind's steps run, on a connection or in offline SQL.

    :param per_step: whether each step has a transaction of its own (PostgreSQL then
        forgets every ``SET LOCAL`` between steps).
    """

    def __init__(self, bind: Bind, *, per_step: bool) -> None:
        self.bind = bind
        self.backend = bind.backend
        self.per_step = per_step
        #: Whether a value outlives the step's transaction (MariaDB, MySQL).
        self.session = self.backend == "mysql"
        #: The values set and not yet taken back, by key.
        self.in_force: dict[str, float] = {}

    def begin(self) -> None:
        """A transaction begins: PostgreSQL has forgotten the last one's values."""
        if not self.session:
            self.in_force.clear()

    def before_step(self, module: types.ModuleType | None) -> list[str]:
        """The statements that start the step of revision ``module``."""
        if self.per_step:
            self.begin()
        wanted = effective(self.bind, module)
        statements = []
        for key in sorted(wanted.keys() | self.in_force.keys()):
            value = wanted.get(key)
            if value is not None:
                self.in_force[key] = value
            elif key in self.in_force:
                del self.in_force[key]  # a previous step's value: back to the server's
            else:
                continue
            statements.append(statement(self.backend, key, value))
        return statements

    def again(self) -> list[str]:
        """The statements that put the step's values in force again in a transaction begun
        inside the step (after an ``autocommit_block()``); none where they outlive it."""
        if self.session:
            return []
        return [statement(self.backend, key, value) for key, value in sorted(self.in_force.items())]

    def at_end(self) -> list[str]:
        """The statements that give the session back the server's own settings."""
        found = (
            [statement(self.backend, key, None) for key in sorted(self.in_force)]
            if self.session
            else []
        )
        self.in_force.clear()
        return found

    def failure_note(self, exc: BaseException) -> str:
        """Say which timeout ended a step that failed with ``exc`` (empty if none did)."""
        orig = getattr(exc, "orig", None)
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        code = orig.args[0] if orig is not None and orig.args else None
        if state == "55P03" and "lock_timeout" in self.in_force:
            key = "lock_timeout"
        elif state == "57014" and "statement_timeout" in self.in_force:
            key = "statement_timeout"
        elif code == 1205 and "lock_wait_timeout" in self.in_force:
            key = "lock_wait_timeout"
        else:
            return ""
        if key == "statement_timeout":
            why = "before the statement finished;"
        else:
            why = (
                "waiting for a lock another session holds, such as an open transaction that "
                "used the table; run it again when the database is quieter, or"
            )
        return (
            f" (the {key} of {self.in_force[key]:g}s ran out {why} set a longer one for this "
            f"revision: timeouts = {{{key!r}: ...}} in its file)"
        )
