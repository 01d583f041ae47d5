"""Run a ``Plan``: one connection and one Alembic environment per bind.

The executor never prints. It reports typed events to a callback the caller supplies
and returns a :class:`MigrationResult` describing what was applied on which bind.
"""

from __future__ import annotations

import functools
import io
import queue
import signal
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from contextlib import ExitStack
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from typing import cast
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ._collector import collector_running
from .environment import BindRuntime
from .environment import context_options
from .environment import ForeignKeyViolation
from .environment import sqlite_transactions
from .environment import SQLiteForeignKeys
from .environment import with_x_arguments
from .errors import MigrationFailedError
from .errors import MigrationInterruptedError
from .errors import PlanChangedError
from .errors import PlanError
from .identity import DatabaseIdentity
from .plan import BindResult
from .plan import MigrationResult
from .plan import OfflineSQL
from .plan import Plan
from .plan import Step
from .redact import describe_exception
from .redact import scrub
from .timeouts import StepTimeouts

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext
    from alembic.runtime.migration import MigrationStep
    from alembic.script import ScriptDirectory

__all__ = [
    "BindFinished",
    "BindResult",
    "Event",
    "EventCallback",
    "MigrationResult",
    "StepFailed",
    "StepFinished",
    "StepStarted",
    "StopRequested",
    "execute",
    "render_sql",
]


@dataclass(frozen=True, kw_only=True)
class StepStarted:
    step: Step
    index: int
    total: int


@dataclass(frozen=True, kw_only=True)
class StepFinished:
    step: Step
    index: int
    total: int
    elapsed: float


@dataclass(frozen=True, kw_only=True)
class StepFailed:
    step: Step
    index: int
    total: int
    error: str


@dataclass(frozen=True, kw_only=True)
class BindFinished:
    bind: str
    heads: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopRequested:
    """The first SIGINT or SIGTERM of a run: no further step starts.

    ``can_abort`` says whether a second signal abandons the running step (it does when the
    steps run on the main thread; binds migrating side by side finish theirs).
    """

    signal: int
    can_abort: bool


Event = StepStarted | StepFinished | StepFailed | BindFinished | StopRequested
EventCallback = Callable[[Event], None]


class _BindRun:
    """One bind's connection and environment, kept open while the plan runs."""

    def __init__(
        self,
        runtime: BindRuntime,
        stack: ExitStack,
        purge: bool,
        tag: str | None,
        x_arguments: Sequence[str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = runtime.bind.name
        self.secrets = runtime.bind.secrets
        self.connection = stack.enter_context(runtime.bind.connect())
        if self.connection.dialect.name != "sqlite":
            # Runs just before the connection is closed: see _discard_session.
            stack.callback(self._discard_session)
        from alembic.runtime.environment import EnvironmentContext

        self._pending: Iterable[MigrationStep] = ()
        self._expected: tuple[str, ...] = ()
        self.env = EnvironmentContext(
            with_x_arguments(runtime.config, x_arguments),
            runtime.script,
            fn=self._steps,
            purge=purge,
            tag=tag,
        )
        options = context_options(runtime.bind)
        self.foreign_keys: SQLiteForeignKeys | None = None
        if self.connection.dialect.name == "sqlite" and hasattr(
            self.connection.connection.driver_connection, "set_authorizer"
        ):
            self.foreign_keys = SQLiteForeignKeys(runtime.bind, self.connection, stack)
        sqlite_transactions(self.connection, options)
        with self.env:
            self.env.configure(connection=self.connection, **options)
        #: Whether each step commits on its own (else a failure undoes the whole group).
        self.per_migration = bool(options.get("transaction_per_migration"))
        self.context: MigrationContext = self.env.get_context()
        from . import _alembic_compat as compat

        compat.uncached_version_writes(self.context)
        self.timeouts = StepTimeouts(
            runtime.bind, per_step=self.per_migration and self.context.impl.transactional_ddl
        )
        _timeouts_after_blocks(self.context, self.timeouts)
        # MariaDB's and MySQL's session timeouts need no reset: the server connection is
        # not given back to the pool (_discard_session).
        #: The tracker of the steps running now: told of commits made inside a step.
        self.tracker: _Tracker | None = None
        sa.event.listen(self.connection, "commit", self._on_commit)
        sa.event.listen(self.connection, "after_cursor_execute", self._on_statement)

    def _on_statement(
        self, connection: sa.Connection, cursor: Any, statement: str, *_: Any
    ) -> None:
        tracker = self.tracker
        if tracker is not None and tracker.recording:
            if _first_word(statement) == "BEGIN":
                return  # Flask-Alembic's own BEGIN, or the driver's: no work of the revision
            # What the step has run so far: on a database that cannot roll back schema
            # changes, or a connection that commits each statement, what a failure keeps.
            tracker.statements.append(statement)
            tracker.autocommitted = _autocommits(connection)

    def _discard_session(self) -> None:
        """Keep what the revisions set for their session (``SET foreign_key_checks = 0``,
        a ``SET lock_timeout``, a temporary table) out of the app's pool: the server
        connection is closed instead of going back to the pool, which opens a new one
        when next asked. (SQLite keeps its connection: an in-memory database lives in it.)
        """
        with suppress(sa.exc.SQLAlchemyError):
            self.connection.invalidate()

    def alive(self) -> bool:
        """Whether the connection still answers (it waits idle between a bind's groups)."""
        try:
            self.connection.exec_driver_sql("SELECT 1")
            self.connection.rollback()
        except sa.exc.DBAPIError:
            return False
        return True

    def _on_commit(self, connection: sa.Connection) -> None:
        if self.tracker is not None and self.tracker.in_step:
            # Alembic's autocommit_block() commits what the step did so far.
            self.tracker.committed_in_step = True

    def kept(self, start: tuple[str, ...], finished: list[Step]) -> list[Step]:
        """Which of ``finished`` a failed single-transaction group left applied.

        Normally none: the failure rolled the group back. But a step that used
        ``autocommit_block()`` committed everything before it, so the version table, not
        the plan, says where the bind is.
        """
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
            now = set(self.runtime.bind.read_heads(self.connection))
            self.connection.rollback()
        except Exception:  # the connection itself may be what failed
            return []
        heads, kept = start, []
        for count, step in enumerate(finished, 1):
            heads = _advance(heads, step)
            if set(heads) == now:
                kept = finished[:count]
        return kept

    def _steps(self, heads: Any, context: MigrationContext) -> Iterable[MigrationStep]:
        found = tuple(heads or ())
        if set(found) != set(self._expected) and not context.purge:
            raise PlanError(
                f"Bind {self.name!r} is at {', '.join(found) or 'base'}, not at "
                f"{', '.join(self._expected) or 'base'} as planned: another process changed it.",
                bind=self.name,
                hint="Run the command again to plan from its new state.",
            )
        return self._pending

    def run(self, steps: Iterable[MigrationStep], expected: tuple[str, ...]) -> None:
        self._pending = steps
        self._expected = expected
        self.timeouts.begin()
        try:
            with self.env, self.env.begin_transaction():
                self.env.run_migrations()
        finally:
            self._pending = ()
        if self.connection.in_transaction():
            self.connection.commit()


def execute(
    plan: Plan,
    runtimes: Mapping[str, BindRuntime],
    *,
    on_event: EventCallback | None = None,
    tag: str | None = None,
    x_arguments: Sequence[str] | None = None,
    parallel: int = 1,
    databases: Mapping[str, DatabaseIdentity] | None = None,
    guard: Callable[[str], None] | None = None,
    release_modules: bool = False,
) -> MigrationResult:
    """Run ``plan`` and return what was applied; raise ``MigrationFailedError`` on failure.

    :param tag: passed to the migrations, as ``alembic.context.get_tag_argument()``.
    :param x_arguments: passed to the migrations, as ``alembic.context.get_x_argument()``.
    :param parallel: how many independent groups of binds may run at once. Binds that
        depend on each other, or share a database, are always run one after another,
        in the plan's order.
    :param databases: each bind's database identity, which tells binds sharing a
        database; without it, only one bind runs at a time.
    :param guard: called with a bind's name before each of its steps and before the
        step's version row is written; raising there fails the step (rolled back where
        the database can). The migration locks use it to check they are still held.
    :param release_modules: let go of each revision's module once its step has run (see
        :func:`~flask_alembic._alembic_compat.release_module`), so memory does not grow
        with the steps already run; a later run imports the file again.
    """
    lock = threading.Lock()
    user_emit = on_event or (lambda event: None)

    def emit(event: Event) -> None:
        with lock:  # callbacks never see two events at once
            user_emit(event)

    run = _Run(plan, runtimes, emit, tag, guard, x_arguments)
    run.release_modules = release_modules
    started = time.perf_counter()
    with collector_running():
        return _execute(run, plan, databases, parallel, started)


def _execute(
    run: _Run,
    plan: Plan,
    databases: Mapping[str, DatabaseIdentity] | None,
    parallel: int,
    started: float,
) -> MigrationResult:
    if parallel > 1 and databases is not None:
        components = _components(plan, databases)
    else:
        components = [list(plan.binds)]
    # Side by side, a second signal cannot stop the workers at once: they finish their
    # step, and the summary is printed.
    run.stop.parallel = len(components) > 1
    with run.stop.installed():
        if len(components) <= 1:
            run.steps_of(list(plan.steps))
        else:
            from concurrent.futures import ThreadPoolExecutor

            from . import _alembic_compat as compat

            with (
                compat.thread_safe_proxies(),
                ThreadPoolExecutor(
                    max_workers=min(parallel, len(components)), thread_name_prefix="flask-alembic"
                ) as pool,
            ):
                groups = [[s for s in plan.steps if s.bind in set(c)] for c in components]
                for future in [pool.submit(run.steps_of, group) for group in groups]:
                    future.result()
    return run.result(time.perf_counter() - started)


class _Run:
    """The state of one plan's run, shared by the threads running parts of it."""

    def __init__(
        self,
        plan: Plan,
        runtimes: Mapping[str, BindRuntime],
        emit: EventCallback,
        tag: str | None,
        guard: Callable[[str], None] | None = None,
        x_arguments: Sequence[str] | None = None,
    ) -> None:
        self.plan = plan
        self.x_arguments = x_arguments
        self.guard = guard
        self.runtimes = runtimes
        self.emit = emit
        self.tag = tag
        self.steps = list(plan.steps)
        self.total = len(self.steps)
        self.heads = {name: tuple(h) for name, h in plan.start.items()}
        self.applied: dict[str, list[Step]] = {name: [] for name in plan.binds}
        self.elapsed: dict[str, float] = dict.fromkeys(plan.binds, 0.0)
        #: Bind -> (the step that failed, the error), in the order failures happened.
        self.failures: dict[str, tuple[Step, str]] = {}
        #: Bind -> what its failed step kept, on a database that cannot roll back DDL.
        self.partial: dict[str, str] = {}
        #: Bind -> the step a second signal abandoned.
        self.aborted: dict[str, Step] = {}
        self.cause: BaseException | None = None
        self.lock = threading.Lock()
        self.stop = _StopSignal(self._stop_requested)
        #: Whether each revision's module is let go of once its step has run.
        self.release_modules = False

    def _stop_requested(self, signum: int) -> None:
        self.emit(StopRequested(signal=signum, can_abort=not self.stop.parallel))

    def steps_of(self, steps: list[Step]) -> None:
        """Run ``steps`` (some binds' part of the plan, in order) on this thread."""
        runs: dict[str, _BindRun] = {}
        index = 0
        with ExitStack() as stack:
            while index < len(steps):
                if self.stop.stopping:
                    return
                group = _next_group(steps, index)
                bind_name = group[0].bind
                runtime = self.runtimes[bind_name]
                if bind_name not in runs or not runs[bind_name].alive():
                    # Back to a bind after another's steps, its connection may have been
                    # closed while it waited (a server's idle timeout): take a new one.
                    purge = any(step.purge for step in self.plan.for_bind(bind_name))
                    runs[bind_name] = _BindRun(runtime, stack, purge, self.tag, self.x_arguments)
                bind_run = runs[bind_name]
                started_at = time.perf_counter()
                offset = self.steps.index(group[0])
                tracker = _Tracker(group, offset, self.total, self.emit, self.stop)
                tracker.release_modules = self.release_modules
                if self.guard is not None:
                    check = functools.partial(self.guard, bind_name)
                    tracker.before_step.append(check)
                    tracker.after_step.append(check)
                if (keys := bind_run.foreign_keys) is not None:
                    tracker.before_step.append(keys.before_step)
                    tracker.after_step.append(keys.after_step)
                tracker.before_step.append(
                    _timeouts_hook(tracker, runtime, bind_run.timeouts, bind_run.context)
                )
                bind_run.tracker = tracker
                try:
                    bind_run.run(
                        tracker.alembic_steps(runtime.script), self.heads.get(bind_name, ())
                    )
                except KeyboardInterrupt as exc:
                    # A second signal: the running step was abandoned (and rolled back
                    # where the database can); report the run as interrupted.
                    self._record(bind_name, tracker.finished_steps(), started_at)
                    abandoned = tracker.current or group[0]
                    self.aborted.setdefault(bind_name, abandoned)
                    partial = _partial(bind_run, tracker, exc, abandoned)
                    if partial is not None:
                        self.partial[bind_name] = partial
                    return
                except Exception as exc:
                    done = tracker.finished_steps()
                    if not bind_run.per_migration and bind_run.context.impl.transactional_ddl:
                        # One transaction for the group: the failure undid it all, unless
                        # a step committed early.
                        done = bind_run.kept(self.heads.get(bind_name, ()), done)
                    self._record(bind_name, done, started_at)
                    if isinstance(exc, _Stopped):
                        return
                    failed = tracker.current or group[0]
                    guard = bind_run.foreign_keys
                    if isinstance(exc, PlanError):  # the bind moved since it was planned
                        error = " ".join(exc.message.split())
                    elif guard is not None and guard.refused is not None:
                        error = guard.refusal()
                    elif isinstance(exc, ForeignKeyViolation):
                        error = str(exc)
                    else:
                        error = (
                            describe_exception(exc, bind_run.secrets)
                            + _moved_note(exc)
                            + bind_run.timeouts.failure_note(exc)
                        )
                        partial = _partial(bind_run, tracker, exc, failed)
                        if partial is not None:
                            error += f" ({partial})"
                            self.partial[bind_name] = partial
                    self.stop.failure()  # other threads stop after their current step
                    with self.lock:
                        self.failures[bind_name] = (failed, error)
                        if self.cause is None:
                            self.cause = exc
                    self.emit(
                        StepFailed(
                            step=failed,
                            index=self.steps.index(failed) + 1,
                            total=self.total,
                            error=error,
                        )
                    )
                    return
                tracker.finish()
                self._record(bind_name, group, started_at)
                index += len(group)
                if bind_name not in {s.bind for s in steps[index:]}:
                    self.emit(BindFinished(bind=bind_name, heads=self.heads[bind_name]))

    def _record(self, bind_name: str, done: Sequence[Step], started_at: float) -> None:
        self.applied[bind_name].extend(done)
        for step in done:
            self.heads[bind_name] = _advance(self.heads.get(bind_name, ()), step)
        self.elapsed[bind_name] += time.perf_counter() - started_at

    def result(self, elapsed: float) -> MigrationResult:
        """What the run did; raises if it did not do all of it."""
        plan, failures = self.plan, self.failures
        results = tuple(
            BindResult(
                bind=name,
                before=tuple(plan.start.get(name, ())),
                after=self.heads.get(name, ()),
                applied=tuple(self.applied[name]),
                elapsed=self.elapsed[name],
                failed=failures[name][0] if name in failures else None,
                error=failures[name][1] if name in failures else None,
            )
            for name in plan.binds
        )
        done = {(s.bind, s.revision, s.direction) for r in results for s in r.applied}
        stopped = {step for step, _ in failures.values()} | set(self.aborted.values())
        not_run = tuple(
            s
            for s in self.steps
            if (s.bind, s.revision, s.direction) not in done and s not in stopped
        )
        first = next(iter(failures.values()), None)
        failed, error = first if first is not None else (None, None)
        signalled = self.stop.signal is not None
        if signalled and failed is None and (not_run or self.aborted):
            name = signal.Signals(self.stop.signal or signal.SIGINT).name
            result = MigrationResult(
                plan=plan,
                binds=results,
                error=f"interrupted by {name}",
                not_run=not_run,
                elapsed=elapsed,
            )
            abandoned = "".join(
                f" Step {step.revision or step.label} of bind {bind!r} was abandoned by a "
                "second signal and rolled back"
                + (f", except: {self.partial[bind]}." if bind in self.partial else ".")
                for bind, step in self.aborted.items()
            )
            raise MigrationInterruptedError(
                f"{plan.direction.capitalize()} interrupted by {name}: {len(result.applied)} "
                f"step(s) applied, {len(not_run)} not run.{abandoned}",
                hint="Run the command again to continue.",
                result=result,
                exit_code=128 + (self.stop.signal or signal.SIGINT),
            )
        result = MigrationResult(
            plan=plan, binds=results, failed=failed, error=error, not_run=not_run, elapsed=elapsed
        )
        if failed is None:
            return result  # a signal during the last step: it finished, everything is applied
        raise self._failure(result, failed) from self.cause

    def _failure(self, result: MigrationResult, first: Step) -> MigrationFailedError:
        """The error of a run where one or more binds failed."""
        direction = result.plan.direction.capitalize()
        failed = [r for r in result.binds if r.failed is not None]
        where = [
            f"bind {r.bind!r} at revision {_name(r.failed)}: {r.error}"
            for r in failed
            if r.failed is not None
        ]
        if len(where) == 1:
            path = f" ({first.path})" if first.path else ""
            message = (
                f"{direction} of bind {first.bind!r} failed at revision {_name(first)}{path}: "
                f"{failed[0].error}"
            )
        else:
            message = f"{direction} failed on {len(where)} binds: " + "; ".join(where)
        if self.partial:
            hint = (
                "Undo what the failed revision kept (listed above) by hand, or make it skip "
                "what is already there, then run the command again."
            )
        elif result.applied:
            hint = "Steps applied before it are kept; fix the problem and run the command again."
        else:
            hint = "Nothing was applied; fix the problem and run the command again."
        kind: type[MigrationFailedError] = MigrationFailedError
        if isinstance(self.cause, PlanError):
            kind = PlanChangedError
            hint = "Run the command again to plan from the databases' new state."
        return kind(
            message,
            bind=first.bind,
            revision=first.revision,
            path=first.path,
            hint=hint,
            result=result,
        )


def _name(step: Step | None) -> str:
    return "" if step is None else step.revision or step.label


#: Statements that begin or end transactions (the first word): not the revision's work.
#: Statements that MySQL and MariaDB commit (with all that ran before them) on their own,
#: by their first word; a temporary table is the exception (see _commits).
_COMMITS_AT_ONCE = frozenset({"ALTER", "CREATE", "DROP", "RENAME", "TRUNCATE", "COMMIT"})


def _partial(run: _BindRun, tracker: _Tracker, exc: BaseException, step: Step) -> str | None:
    """What a failed step left applied, when its database could not undo all of it.

    After ``autocommit_block()`` committed part of the step, or on a database whose
    schema changes commit at once (MySQL, MariaDB), the statements that ran are said;
    ``None`` when the failure rolled everything back.
    """
    statements = tracker.statements
    failing = _short(str(getattr(exc, "statement", "") or ""), run.secrets)
    at = f" at statement {len(statements) + 1}" + (f" ({failing})" if failing else "")
    if tracker.committed_in_step:
        return (
            f"revision {_name(step)} failed{at} after committing part of its work "
            "(autocommit_block()): what it committed is kept and not recorded in the version "
            "table"
        )
    if tracker.autocommitted:
        kept = len(statements)  # every statement committed as it ran
    elif run.context.impl.transactional_ddl:
        return None
    elif _commits_at_once(str(getattr(exc, "statement", "") or "")):
        # The server commits what ran before such a statement even when it then fails.
        kept = len(statements)
    else:
        # Everything up to the last statement that commits by itself stays; the rest of
        # the step's transaction was rolled back.
        kept = 0
        for number, statement in enumerate(statements, 1):
            if _commits_at_once(statement):
                kept = number
    if not kept:
        return None
    server = "the database"
    if run.connection.dialect.name == "mysql":
        server = "MariaDB" if getattr(run.connection.dialect, "is_mariadb", False) else "MySQL"
    shown = "; ".join(_short(s, run.secrets, 80) for s in statements[:kept][:3])
    more = f"; and {kept - 3} more" if kept > 3 else ""
    which = "statement 1 (" if kept == 1 else f"statements 1-{kept} ("
    verb = "was" if kept == 1 else "were"
    return (
        f"revision {_name(step)} failed{at}; {which}{shown}{more}) {verb} kept by {server} "
        "and not recorded in the version table"
    )


def _moved_note(exc: BaseException) -> str:
    """Say so when Alembic found the version row changed under the step."""
    from alembic.util import CommandError

    if isinstance(exc, CommandError) and "expected to match one row" in str(exc):
        return (
            " (the version table changed while the step ran: another process may be "
            "migrating this database without the lock)"
        )
    return ""


def _commits_at_once(statement: str) -> bool:
    """Whether MySQL and MariaDB commit everything so far at ``statement``.

    Schema changes commit implicitly, before they run; ``CREATE TEMPORARY TABLE`` and
    ``DROP TEMPORARY TABLE`` do not; an explicit ``COMMIT`` does.
    """
    words = _words(statement, 2)
    if not words or words[0] not in _COMMITS_AT_ONCE:
        return False
    return not (words[0] in {"CREATE", "DROP"} and words[1:] == ["TEMPORARY"])


def _first_word(statement: str) -> str:
    words = _words(statement, 1)
    return words[0] if words else ""


def _words(statement: str, count: int) -> list[str]:
    """The first ``count`` words of ``statement``, upper case, after leading comments.

    Only comments are skipped (``/* ... */`` and ``-- ...`` lines): no SQL is parsed.
    """
    text = statement.lstrip()
    while text.startswith(("/*", "--")):
        if text.startswith("/*"):
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :].lstrip()
        else:
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :].lstrip()
    return [word.upper() for word in text.split(None, count)[:count]]


def _autocommits(connection: sa.Connection) -> bool:
    """Whether the driver commits every statement as it runs (an AUTOCOMMIT engine)."""
    driver = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        # No isolation level: the driver never begins; SQLAlchemy's recipe may still have.
        no_level = getattr(driver, "isolation_level", "") is None
        return no_level and not getattr(driver, "in_transaction", False)
    autocommit = getattr(driver, "autocommit", None)
    if callable(autocommit):  # PyMySQL: autocommit() sets, get_autocommit() reads
        autocommit = getattr(driver, "get_autocommit", lambda: False)()
    return autocommit is True


def _short(statement: str, secrets: Sequence[str], limit: int = 200) -> str:
    """One line of SQL, cut to ``limit`` characters, secrets hidden."""
    text = scrub(" ".join(statement.split()), secrets)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Stopped(Exception):
    """Raised between steps after SIGINT/SIGTERM, so the run ends at a clean point."""


class _StopSignal:
    """Remembers SIGINT/SIGTERM during a run; a second signal interrupts at once.

    :param notify: told of the first signal (its number), from a thread of its own.
    """

    def __init__(self, notify: Callable[[int], None] | None = None) -> None:
        self.signal: int | None = None
        self.failed = False
        #: With binds running side by side, a second signal cannot stop the workers at
        #: once: they always finish their current step, and the summary is printed.
        self.parallel = False
        self.notify = notify

    def failure(self) -> None:
        """A step failed: the run ends at each thread's next step boundary."""
        self.failed = True

    @property
    def stopping(self) -> bool:
        return self.signal is not None or self.failed

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        # The handler runs on the main thread between two bytecodes, perhaps while that
        # thread holds a lock (the progress callback's, an output stream's): telling the
        # callback from there could deadlock, or fail as a reentrant write. It only puts
        # the signal in a SimpleQueue (whose put() is safe in a signal handler), and a
        # thread started beforehand (starting one in a handler takes locks too) tells.
        signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        teller = None
        if self.notify is not None:
            teller = threading.Thread(
                target=self._tell, args=(signals,), name="flask-alembic-signal", daemon=True
            )
            teller.start()

        def handler(signum: int, frame: Any) -> None:
            if self.signal is not None and not self.parallel:
                raise KeyboardInterrupt
            if self.signal is None:
                self.signal = signum
                signals.put(signum)

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if teller is not None:
                signals.put(None)
                teller.join()

    def _tell(self, signals: queue.SimpleQueue[int | None]) -> None:
        signum = signals.get()
        if signum is not None and self.notify is not None:
            self.notify(signum)

    def check(self) -> None:
        if self.stopping:
            raise _Stopped


def _components(plan: Plan, databases: Mapping[str, DatabaseIdentity]) -> list[list[str]]:
    """Groups of binds that may run side by side: linked binds share a group.

    Binds are linked by a cross-bind dependency in the plan, or by living in the same
    database (their migrations could contend for the same locks and tables).
    """
    parent = {name: name for name in plan.binds}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def union(a: str, b: str) -> None:
        if a in parent and b in parent:
            parent[find(a)] = find(b)

    for a, b in plan.links:
        union(a, b)
    names = list(plan.binds)
    for index, name in enumerate(names):
        for other in names[:index]:
            if databases[name].same_database(databases[other]):
                union(name, other)
    groups: dict[str, list[str]] = {}
    for name in plan.binds:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())


def _next_group(steps: Sequence[Step], start: int) -> list[Step]:
    group = [steps[start]]
    for step in steps[start + 1 :]:
        if step.bind != group[0].bind:
            break
        group.append(step)
    return group


def _advance(heads: tuple[str, ...], step: Step) -> tuple[str, ...]:
    """The bind's heads after ``step`` (a close model of Alembic's own bookkeeping)."""
    if step.direction == "stamp":
        return step.destination
    remaining = [h for h in heads if h not in step.source]
    return tuple(remaining + [d for d in step.destination if d not in remaining])


class _StepFunction:
    """A step's ``upgrade()`` or ``downgrade()``, run under a tracker.

    A small object rather than a closure with ``functools.wraps``: a long history has one
    per step, all built before the first runs (a closure, its cells and its copied
    attributes took about 750 bytes a step, this takes about 70). Alembic logs and
    comments each step by the function's ``__name__``, which it keeps.
    """

    __slots__ = ("__name__", "fn", "position", "tracker")

    def __init__(self, tracker: _Tracker, position: int, fn: Callable[..., Any]) -> None:
        self.tracker = tracker
        self.position = position
        self.fn = fn
        self.__name__: str = getattr(fn, "__name__", "migration_fn")

    def __call__(self, **kw: Any) -> Any:
        return self.tracker._run_step(self.position, self.fn, kw)


class _Tracker:
    """Wraps Alembic's step callables to report when each step starts and ends."""

    def __init__(
        self,
        group: list[Step],
        offset: int,
        total: int,
        emit: EventCallback,
        stop: _StopSignal | None = None,
    ) -> None:
        self.stop = stop
        self.group = group
        self.offset = offset
        self.total = total
        self.emit = emit
        self.position = -1
        self.started_at = 0.0
        #: Whether a step's own code is running (not Alembic's bookkeeping around it).
        self.in_step = False
        #: Whether the running step committed part of its work (``autocommit_block()``).
        self.committed_in_step = False
        #: The statements the running step has run so far.
        self.statements: list[str] = []
        #: Whether the last of them was committed as it ran (an autocommitting connection).
        self.autocommitted = False
        #: Whether the revision's own code is running (not a hook's check).
        self.recording = False
        #: Called before each step's own code, in its transaction.
        self.before_step: list[Callable[[], None]] = []
        #: Called after each step's own code, before Alembic records and commits it.
        self.after_step: list[Callable[[], None]] = []
        #: Whether each step's revision module is let go of once the step has run.
        self.release_modules = False
        self._script: ScriptDirectory | None = None

    @property
    def current(self) -> Step | None:
        return self.group[self.position] if self.position >= 0 else None

    def finished_steps(self) -> list[Step]:
        return self.group[: max(self.position, 0)]

    def alembic_steps(self, script: ScriptDirectory) -> Iterable[MigrationStep]:
        from . import _alembic_compat as compat

        first = self.group[0]
        if first.direction == "stamp":
            # A purged table is empty when the stamp is computed.
            heads = () if first.purge else first.source
            steps: list[MigrationStep] = list(compat.stamp_steps(script, first.destination, heads))
            self._on_start(0)
            return steps
        self._script = script
        return self._wrapped(
            compat.revision_steps(
                script, [s.revision or "" for s in self.group], upgrade=first.direction == "upgrade"
            )
        )

    def _wrapped(self, steps: Iterable[MigrationStep]) -> Iterator[MigrationStep]:
        """Each of ``steps`` with its function wrapped, built when Alembic asks for it.

        Building a step imports its revision file (again, for a plain file let go of once
        checked): a failure there is this step's, once the one before it is done.
        """
        built = iter(steps)
        position = 0
        while True:
            try:
                alembic_step = next(built)
            except StopIteration:
                return
            except BaseException:
                if position < len(self.group):
                    self._release(position - 1)
                    self._on_start(position)
                raise
            alembic_step.migration_fn = _StepFunction(self, position, alembic_step.migration_fn)
            yield alembic_step
            position += 1

    def _release(self, position: int) -> None:
        """Let go of the module of the step at ``position``, which has run.

        Called when the next step starts (or the group ends): Alembic then holds its step
        for that one, no longer for this one.
        """
        if not self.release_modules or self._script is None or not 0 <= position < len(self.group):
            return
        from . import _alembic_compat as compat

        revision = self.group[position].revision
        if revision is not None:
            compat.release_module(self._script.revision_map.get_revision(revision))  # type: ignore[arg-type]

    def _run_step(self, position: int, fn: Callable[..., Any], kw: dict[str, Any]) -> Any:
        self._release(position - 1)
        self._on_start(position)
        self.in_step, self.committed_in_step = True, False
        try:
            for hook in self.before_step:
                hook()
            # The revision's own statements, not the hooks'.
            self.statements, self.autocommitted, self.recording = [], False, True
            try:
                result = fn(**kw)
            finally:
                self.recording = False
            for hook in self.after_step:
                hook()
            return result
        finally:
            self.in_step = False

    def _on_start(self, position: int) -> None:
        # The previous step's transaction has committed once the next one starts.
        if self.position >= 0:
            self._emit_finished()
        self.position = position
        if self.stop is not None and position > 0:
            self.stop.check()  # stops here: every step before this one is committed
        self.started_at = time.perf_counter()
        step = self.group[position]
        self.emit(StepStarted(step=step, index=self.offset + position + 1, total=self.total))

    def _emit_finished(self) -> None:
        step = self.group[self.position]
        self.emit(
            StepFinished(
                step=step,
                index=self.offset + self.position + 1,
                total=self.total,
                elapsed=time.perf_counter() - self.started_at,
            )
        )

    def finish(self) -> None:
        if self.position >= 0:
            self._emit_finished()
            self._release(self.position)
            self.position = len(self.group)


def _timeouts_hook(
    tracker: _Tracker, runtime: BindRuntime, timeouts: StepTimeouts, context: MigrationContext
) -> Callable[[], None]:
    """A step hook that starts each step of ``tracker`` by setting its timeouts, through
    ``context``: on the connection, or in the offline SQL."""

    def set_timeouts() -> None:
        step = tracker.current
        script = runtime.script.get_revision(step.revision) if step and step.revision else None
        for statement in timeouts.before_step(script.module if script is not None else None):
            context.execute(statement)

    return set_timeouts


def _timeouts_after_blocks(context: MigrationContext, timeouts: StepTimeouts) -> None:
    """Set the step's timeouts again after each ``autocommit_block()`` of its revision.

    The block commits the step's transaction, and with it PostgreSQL's ``SET LOCAL``
    values, then begins a new one for the rest of the step: the values are set again
    there, through ``context`` (on the connection, or in the offline SQL). The statements
    in the block itself run with the server's own settings.
    """
    block = context.autocommit_block

    @contextmanager
    def autocommit_block() -> Iterator[None]:
        with block():
            yield
        if context.impl.transactional_ddl:
            for statement in timeouts.again():
                context.execute(statement)

    vars(context)["autocommit_block"] = autocommit_block


def render_sql(
    plan: Plan,
    runtimes: Mapping[str, BindRuntime],
    *,
    tag: str | None = None,
    x_arguments: Sequence[str] | None = None,
) -> OfflineSQL:
    """The SQL of ``plan``, in each bind's dialect (offline mode), in the plan's order.

    Each run of consecutive steps of one bind is one segment: a bind whose steps the plan
    interleaves with another's (its third step needs the other bind's second) gets a
    segment each time the plan comes back to it. The binds with nothing to do follow,
    each with an empty segment. SQLite segments wrap each migration in ``BEGIN``/
    ``COMMIT``, as the online run does.
    """
    segments: list[tuple[str, str]] = []
    heads = {name: tuple(start) for name, start in plan.start.items()}
    steps = list(plan.steps)
    index = 0
    while index < len(steps):
        group = _next_group(steps, index)
        name = group[0].bind
        segments.append(
            (name, _render(runtimes[name], group, heads.get(name, ()), tag, x_arguments))
        )
        for step in group:
            heads[name] = _advance(heads.get(name, ()), step)
        index += len(group)
    for name in plan.start:
        if name not in plan.binds:
            segments.append(
                (name, _render(runtimes[name], [], heads.get(name, ()), tag, x_arguments))
            )
    return OfflineSQL(segments)


def _render(
    runtime: BindRuntime,
    group: list[Step],
    start: tuple[str, ...],
    tag: str | None,
    x_arguments: Sequence[str] | None = None,
) -> str:
    """The SQL of one bind's consecutive steps ``group``, from ``start``."""
    from alembic.runtime.environment import EnvironmentContext

    buffer = io.StringIO()
    tracker = _Tracker(group, 0, len(group), lambda event: None) if group else None
    found: list[tuple[MigrationContext, StepTimeouts]] = []

    def steps_for(heads: Any, context: MigrationContext) -> Iterable[MigrationStep]:
        if tracker is None:
            return []
        per_step = bool(context.opts.get("transaction_per_migration"))
        timeouts = StepTimeouts(runtime.bind, per_step=per_step and context.impl.transactional_ddl)
        found.append((context, timeouts))
        tracker.before_step.append(_timeouts_hook(tracker, runtime, timeouts, context))
        _timeouts_after_blocks(context, timeouts)
        return tracker.alembic_steps(runtime.script)

    config = with_x_arguments(runtime.config, x_arguments)
    env = EnvironmentContext(config, runtime.script, fn=steps_for, as_sql=True, tag=tag)
    engine = runtime.bind.engine
    transactional: dict[str, Any] = {}
    if engine.dialect.name == "sqlite":
        # Online, SQLite migrations run in real transactions (sqlite_transactions).
        transactional["transactional_ddl"] = runtime.bind.context_options.get(
            "transactional_ddl", True
        )
    with env:
        env.configure(
            **context_options(
                runtime.bind,
                **transactional,
                # The URL only chooses the dialect: nothing connects, no credentials needed.
                url=sa.URL.create(engine.url.drivername),
                output_buffer=buffer,
                starting_rev=cast(Any, list(start) or None),  # Alembic takes a list too
                literal_binds=True,
                connection=None,
            )
        )
        with env.begin_transaction():
            env.run_migrations()
        for context, timeouts in found:
            # As online, a MariaDB/MySQL session ends with the server's own settings.
            for statement in timeouts.at_end():
                context.execute(statement)
    return buffer.getvalue()
