"""Run a ``Plan``: one connection and one Alembic environment per bind.

The executor never prints. It reports typed events to a callback the caller supplies
and returns a :class:`MigrationResult` describing what was applied on which bind.
"""

from __future__ import annotations

import functools
import io
import signal
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from typing import cast
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ._collector import collector_paused
from .environment import BindRuntime
from .environment import context_options
from .environment import ForeignKeyViolation
from .environment import sqlite_transactions
from .environment import SQLiteForeignKeys
from .errors import MigrationFailedError
from .errors import MigrationInterruptedError
from .errors import PlanError
from .identity import DatabaseIdentity
from .plan import BindResult
from .plan import MigrationResult
from .plan import Plan
from .plan import Step
from .redact import describe_exception
from .redact import scrub

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


Event = StepStarted | StepFinished | StepFailed | BindFinished
EventCallback = Callable[[Event], None]


class _BindRun:
    """One bind's connection and environment, kept open while the plan runs."""

    def __init__(
        self, runtime: BindRuntime, stack: ExitStack, purge: bool, tag: str | None
    ) -> None:
        self.runtime = runtime
        self.name = runtime.bind.name
        self.secrets = runtime.bind.secrets
        self.connection = stack.enter_context(runtime.bind.connect())
        from alembic.runtime.environment import EnvironmentContext

        self._pending: list[MigrationStep] = []
        self._expected: tuple[str, ...] = ()
        self.env = EnvironmentContext(
            runtime.config, runtime.script, fn=self._steps, purge=purge, tag=tag
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
        #: The tracker of the steps running now: told of commits made inside a step.
        self.tracker: _Tracker | None = None
        sa.event.listen(self.connection, "commit", self._on_commit)

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

    def _steps(self, heads: Any, context: MigrationContext) -> list[MigrationStep]:
        found = tuple(heads or ())
        if set(found) != set(self._expected) and not context.purge:
            raise PlanError(
                f"Bind {self.name!r} is at {', '.join(found) or 'base'}, not at "
                f"{', '.join(self._expected) or 'base'} as planned: another process changed it.",
                bind=self.name,
                hint="Run the command again to plan from its new state.",
            )
        return self._pending

    def run(self, steps: list[MigrationStep], expected: tuple[str, ...]) -> None:
        self._pending = steps
        self._expected = expected
        with self.env, self.env.begin_transaction():
            self.env.run_migrations()
        if self.connection.in_transaction():
            self.connection.commit()


def execute(
    plan: Plan,
    runtimes: Mapping[str, BindRuntime],
    *,
    on_event: EventCallback | None = None,
    tag: str | None = None,
    parallel: int = 1,
    databases: Mapping[str, DatabaseIdentity] | None = None,
) -> MigrationResult:
    """Run ``plan`` and return what was applied; raise ``MigrationFailedError`` on failure.

    :param tag: passed to the migrations, as ``alembic.context.get_tag_argument()``.
    :param parallel: how many independent groups of binds may run at once. Binds that
        depend on each other, or share a database, are always run one after another,
        in the plan's order.
    :param databases: each bind's database identity, which tells binds sharing a
        database; without it, only one bind runs at a time.
    """
    lock = threading.Lock()
    user_emit = on_event or (lambda event: None)

    def emit(event: Event) -> None:
        with lock:  # callbacks never see two events at once
            user_emit(event)

    run = _Run(plan, runtimes, emit, tag)
    started = time.perf_counter()
    with collector_paused():
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
    ) -> None:
        self.plan = plan
        self.runtimes = runtimes
        self.emit = emit
        self.tag = tag
        self.steps = list(plan.steps)
        self.total = len(self.steps)
        self.heads = {name: tuple(h) for name, h in plan.start.items()}
        self.applied: dict[str, list[Step]] = {name: [] for name in plan.binds}
        self.elapsed: dict[str, float] = dict.fromkeys(plan.binds, 0.0)
        self.failed: Step | None = None
        self.error: str | None = None
        self.cause: BaseException | None = None
        self.stop = _StopSignal()

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
                if bind_name not in runs:
                    purge = any(step.purge for step in self.plan.for_bind(bind_name))
                    runs[bind_name] = _BindRun(runtime, stack, purge, self.tag)
                bind_run = runs[bind_name]
                started_at = time.perf_counter()
                offset = self.steps.index(group[0])
                tracker = _Tracker(group, offset, self.total, self.emit, self.stop)
                if (guard := bind_run.foreign_keys) is not None:
                    tracker.before_step, tracker.after_step = guard.before_step, guard.after_step
                bind_run.tracker = tracker
                try:
                    bind_run.run(
                        tracker.alembic_steps(runtime.script), self.heads.get(bind_name, ())
                    )
                except PlanError:
                    raise
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
                    if guard is not None and guard.refused is not None:
                        error = guard.refusal()
                    elif isinstance(exc, ForeignKeyViolation):
                        error = str(exc)
                    else:
                        error = describe_exception(exc, bind_run.secrets) + _partial_note(
                            bind_run, exc, failed, committed=tracker.committed_in_step
                        )
                    self.stop.failure()  # other threads stop after their current step
                    if self.failed is None:
                        self.failed, self.error, self.cause = failed, error, exc
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
        plan, steps, heads = self.plan, self.steps, self.heads
        applied, bind_elapsed, failed, error = (
            self.applied,
            self.elapsed,
            self.failed,
            self.error,
        )
        stop, cause = self.stop, self.cause
        results = tuple(
            BindResult(
                bind=name,
                before=tuple(plan.start.get(name, ())),
                after=heads.get(name, ()),
                applied=tuple(applied[name]),
                elapsed=bind_elapsed[name],
            )
            for name in plan.binds
        )
        done_ids = {(s.bind, s.revision, s.direction) for r in results for s in r.applied}
        not_run = tuple(
            s
            for s in steps
            if (s.bind, s.revision, s.direction) not in done_ids and s is not failed
        )
        if stop.signal is not None and failed is None:
            name = signal.Signals(stop.signal).name
            error = f"interrupted by {name}"
            result = MigrationResult(
                plan=plan, binds=results, error=error, not_run=not_run, elapsed=elapsed
            )
            raise MigrationInterruptedError(
                f"{plan.direction.capitalize()} interrupted by {name}: {len(result.applied)} "
                f"step(s) applied, {len(not_run)} not run.",
                hint="Run the command again to continue.",
                result=result,
                exit_code=128 + stop.signal,
            )
        result = MigrationResult(
            plan=plan, binds=results, failed=failed, error=error, not_run=not_run, elapsed=elapsed
        )
        if failed is not None:
            assert error is not None
            where = f" ({failed.path})" if failed.path else ""
            raise MigrationFailedError(
                f"{plan.direction.capitalize()} of bind {failed.bind!r} failed at revision "
                f"{failed.revision or failed.label}{where}: {error}",
                bind=failed.bind,
                revision=failed.revision,
                path=failed.path,
                hint=(
                    "Steps applied before it are kept; fix the problem and run the command "
                    "again to continue."
                    if result.applied
                    else "Nothing was applied; fix the problem and run the command again."
                ),
                result=result,
            ) from cause
        return result


def _partial_note(run: _BindRun, exc: BaseException, step: Step, *, committed: bool) -> str:
    """Say what may be left half done: without transactional DDL, or after an early commit.

    :param committed: whether the failing step committed part of its work before failing
        (Alembic's ``autocommit_block()`` does).
    """
    if committed:
        reason = "it committed part of its work before failing (autocommit_block())"
    elif not run.context.impl.transactional_ddl:
        reason = "this database cannot roll back schema changes"
    else:
        return ""
    statement = getattr(exc, "statement", None)
    failing = ""
    if statement:
        text = " ".join(str(statement).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        failing = f"; failing statement: {scrub(text, run.secrets)}"
    if committed:
        return f" (revision {step.revision} may be partially applied: {reason}{failing})"
    return f" ({reason}: revision {step.revision} may be partially applied{failing})"


class _Stopped(Exception):
    """Raised between steps after SIGINT/SIGTERM, so the run ends at a clean point."""


class _StopSignal:
    """Remembers SIGINT/SIGTERM during a run; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.failed = False
        #: With binds running side by side, a second signal cannot stop the workers at
        #: once: they always finish their current step, and the summary is printed.
        self.parallel = False

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

        def handler(signum: int, frame: Any) -> None:
            if self.signal is not None and not self.parallel:
                raise KeyboardInterrupt
            self.signal = self.signal or signum

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

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
        #: Called before each step's own code, in its transaction.
        self.before_step: Callable[[], None] | None = None
        #: Called after each step's own code, before Alembic records and commits it.
        self.after_step: Callable[[], None] | None = None

    @property
    def current(self) -> Step | None:
        return self.group[self.position] if self.position >= 0 else None

    def finished_steps(self) -> list[Step]:
        return self.group[: max(self.position, 0)]

    def alembic_steps(self, script: ScriptDirectory) -> list[MigrationStep]:
        from . import _alembic_compat as compat

        first = self.group[0]
        if first.direction == "stamp":
            # A purged table is empty when the stamp is computed.
            heads = () if first.purge else first.source
            steps: list[MigrationStep] = list(compat.stamp_steps(script, first.destination, heads))
            self._on_start(0)
            return steps
        steps = compat.revision_steps(
            script, [s.revision or "" for s in self.group], upgrade=first.direction == "upgrade"
        )
        for position, alembic_step in enumerate(steps):
            alembic_step.migration_fn = self._wrap(position, alembic_step.migration_fn)
        return steps

    def _wrap(self, position: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        # wraps: Alembic logs and comments steps by the function's name.
        @functools.wraps(fn)
        def run(**kw: Any) -> Any:
            self._on_start(position)
            self.in_step, self.committed_in_step = True, False
            try:
                if self.before_step is not None:
                    self.before_step()
                result = fn(**kw)
                if self.after_step is not None:
                    self.after_step()
                return result
            finally:
                self.in_step = False

        return run

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
            self.position = len(self.group)


def render_sql(
    plan: Plan,
    runtimes: Mapping[str, BindRuntime],
    *,
    tag: str | None = None,
) -> dict[str, str]:
    """The SQL each bind's part of ``plan`` would run, in that bind's dialect (offline mode)."""
    from alembic.runtime.environment import EnvironmentContext

    output: dict[str, str] = {}
    for bind_name in dict.fromkeys([*plan.start, *plan.binds]):
        runtime = runtimes[bind_name]
        bind_steps = list(plan.for_bind(bind_name))
        buffer = io.StringIO()
        start = tuple(plan.start.get(bind_name, ()))
        tracker = (
            _Tracker(bind_steps, 0, len(bind_steps), lambda event: None) if bind_steps else None
        )

        def steps_for(
            heads: Any,
            context: MigrationContext,
            tracker: _Tracker | None = tracker,
            script: ScriptDirectory = runtime.script,
        ) -> list[MigrationStep]:
            return tracker.alembic_steps(script) if tracker else []

        env = EnvironmentContext(
            runtime.config,
            runtime.script,
            fn=steps_for,
            as_sql=True,
            tag=tag,
        )
        engine = runtime.bind.engine
        with env:
            env.configure(
                **context_options(
                    runtime.bind,
                    # The URL only chooses the dialect: nothing connects, no password needed.
                    url=engine.url.set(password=None),
                    output_buffer=buffer,
                    starting_rev=cast(Any, list(start) or None),  # Alembic takes a list too
                    literal_binds=True,
                    connection=None,
                )
            )
            with env.begin_transaction():
                env.run_migrations()
        output[bind_name] = buffer.getvalue()
    return output
