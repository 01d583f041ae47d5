"""Rendering: Rich on a terminal, plain lines otherwise. Decided once per command.

Data goes to stdout, status and progress to stderr. Rich markup is never applied to
user data (revision messages, bind names): it is passed as ``Text``, never as markup.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any
from typing import IO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.script import Script
    from rich.console import Console

    from .executor import Event
    from .extension import _WrittenRevision as WrittenRevision
    from .extension import BindStatus
    from .planner import MigrationResult
    from .planner import Plan
    from .planner import Step

__all__ = ["Output", "is_interactive", "named"]


def named(text: str, ctx: Any = None) -> str:
    """``text`` with its ``flask db`` hints naming the command group as the app registered it.

    Hints are written for the default name; an app that passed ``command_name="migrate"``
    gets ``flask migrate upgrade``. Outside a command, ``text`` is returned unchanged.
    """
    import re

    import click

    current = ctx if ctx is not None else click.get_current_context(silent=True)
    while current is not None and not getattr(current.command, "flask_alembic_group", False):
        current = current.parent
    name = current.info_name if current is not None else None
    if not name or name == "db":
        return text
    return re.sub(r"\bflask db\b", f"flask {name}", text)


def is_interactive(stream: IO[str]) -> bool:
    """Whether to use Rich: a terminal without ``NO_COLOR``, or ``FORCE_COLOR`` set."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """One command's output: a Rich renderer or a plain one, chosen at construction."""

    def __init__(
        self,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        rich: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.rich = is_interactive(self.stdout) if rich is None else rich
        self._width = width
        self._out: Console | None = None
        self._err: Console | None = None

    # Rich is imported only when a terminal will show it.
    def _console(self, stream: IO[str]) -> Console:
        from rich.console import Console

        return Console(
            file=stream,
            force_terminal=True,
            highlight=False,
            markup=False,
            emoji=False,
            width=self._width,
            soft_wrap=False,
        )

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = self._console(self.stdout)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = self._console(self.stderr)
        return self._err

    def line(self, text: str = "") -> None:
        """A line of data on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def status(self, text: str, style: str = "") -> None:
        """A line of status on stderr."""
        if self.rich:
            from rich.text import Text

            self.err.print(Text(text, style=style))
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, message: str) -> None:
        """A one-line error on stderr."""
        if self.rich:
            from rich.text import Text

            text = Text("Error: ", style="bold red")
            text.append(message)
            self.err.print(text)
        else:
            self.stderr.write(f"Error: {message}\n")
            self.stderr.flush()

    # -- revisions ------------------------------------------------------------------

    def scripts(
        self,
        title: str,
        scripts: Sequence[Script],
        bind_of: Any,
        *,
        verbose: bool = False,
        applied: set[str] | None = None,
        empty: str = "",
    ) -> None:
        """A list of revisions, grouped by bind."""
        if not scripts:
            if empty:
                self.status(empty)
            return
        if verbose and not self.rich:
            for script in scripts:
                self.line(f"Bind: {bind_of(script)}")
                self.line(script.log_entry.rstrip())
                self.line()
            return
        if self.rich:
            from rich.table import Table
            from rich.text import Text

            table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
            table.add_column("bind", style="cyan")
            table.add_column("revision", style="bold")
            table.add_column("parent")
            table.add_column("message")
            table.add_column("notes", style="dim")
            if verbose:
                table.add_column("path", style="dim")
            for script in scripts:
                row = [
                    Text(bind_of(script)),
                    Text(script.revision),
                    Text(_parents(script)),
                    Text(script.doc or ""),
                    Text(_notes(script, applied)),
                ]
                if verbose:
                    row.append(Text(script.path))
                table.add_row(*row)
            self.out.print(table)
            return
        for script in scripts:
            notes = _notes(script, applied)
            suffix = f" ({notes})" if notes else ""
            self.line(
                f"{bind_of(script)}: {_parents(script) or '<base>'} -> {script.revision}{suffix}, "
                f"{script.doc or ''}".rstrip(", ")
            )

    def written(self, written: Sequence[WrittenRevision], skipped: Mapping[str, str]) -> None:
        """New revision files (paths on stdout), with the changes each was generated from.

        Every change that drops a table or a column, or may lose data, gets a warning line;
        every bind that was not compared says why.
        """
        for bind, reason in skipped.items():
            self.status(f"{bind}: {reason}.")
        if not written:
            self.status(
                "No changes detected; no revision written. Use --empty for an empty revision."
            )
            return
        for item in written:
            script = item.script
            self.status(f"Generated {item.bind}: {script.revision} {script.path}")
            for change in item.changes:
                self.status(f"  {describe_diff(change)}")
            self.line(script.path)
        for item in written:
            for loss in item.losses:
                self.warning(
                    f"{loss} (revision {item.script.revision}); check it before upgrading."
                )

    def merged(self, scripts: Sequence[Script], bind_of: Any) -> None:
        """New merge revisions: their paths on stdout."""
        for script in scripts:
            self.status(f"Generated {bind_of(script)}: {script.revision} {script.path}")
            self.line(script.path)

    def warning(self, message: str) -> None:
        """A one-line warning on stderr."""
        if self.rich:
            from rich.text import Text

            text = Text("Warning: ", style="bold yellow")
            text.append(message)
            self.err.print(text)
        else:
            self.stderr.write(f"Warning: {message}\n")
            self.stderr.flush()

    # -- plans and runs -------------------------------------------------------------

    def plan(self, plan: Plan, stream: str = "stdout") -> None:
        """The ordered steps of a plan: data on stdout, or a preview on stderr."""
        if not plan.steps:
            self.status(_nothing_to_do(plan))
            return
        to_err = stream == "stderr"
        if self.rich:
            from rich.table import Table
            from rich.text import Text

            table = Table(
                title=f"{plan.direction} plan ({len(plan)} step{'s' * (len(plan) != 1)})",
                title_justify="left",
                show_edge=False,
                pad_edge=False,
            )
            table.add_column("#", justify="right", style="dim")
            table.add_column("bind", style="cyan")
            table.add_column("step", style="bold")
            table.add_column("message")
            for number, step in enumerate(plan.steps, 1):
                table.add_row(
                    str(number), Text(step.bind), Text(_step_label(step)), Text(step.message)
                )
            (self.err if to_err else self.out).print(table)
            return
        for number, step in enumerate(plan.steps, 1):
            message = f" {step.message}" if step.message else ""
            text = f"{number}. {step.bind}: {plan.direction} {_step_label(step)}{message}"
            if to_err:
                self.status(f"plan {text}")
            else:
                self.line(text)

    @contextmanager
    def progress(self, plan: Plan) -> Iterator[Any]:
        """A callback for executor events: a live line on a terminal, a log line otherwise."""
        if not plan.steps:
            yield lambda event: None
            return
        if not self.rich:
            yield self._plain_event
            return
        from rich.console import Group
        from rich.live import Live
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        started = time.perf_counter()
        # One line per bind, so binds migrating side by side stay readable.
        lines: dict[str, Text] = {}

        def render() -> Group:
            grid = Table.grid(padding=(0, 1))
            for bind, text in lines.items():
                grid.add_row(Spinner("dots", style="cyan"), Text(bind, style="cyan"), text)
            return Group(grid)

        live = Live(render(), console=self.err, refresh_per_second=8, transient=True)

        def on_event(event: Event) -> None:
            from .executor import StepFailed
            from .executor import StepFinished
            from .executor import StepStarted

            if isinstance(event, StepStarted):
                lines[event.step.bind] = Text(
                    f"step {event.index} of {event.total}: {_step_label(event.step)} "
                    f"{event.step.message} ({time.perf_counter() - started:.1f}s)"
                )
            elif isinstance(event, StepFinished | StepFailed):
                ok = isinstance(event, StepFinished)
                text = Text("  ✓ " if ok else "  ✗ ", style="green" if ok else "red")
                text.append(f"{event.step.bind}: {_step_label(event.step)} {event.step.message}")
                if isinstance(event, StepFinished):
                    text.append(f" {event.elapsed:.2f}s", style="dim")
                live.console.print(text)
                lines.pop(event.step.bind, None)
            live.update(render())

        with live:
            yield on_event

    def _plain_event(self, event: Event) -> None:
        from .executor import StepFailed
        from .executor import StepFinished

        if isinstance(event, StepFinished):
            message = f" {event.step.message}" if event.step.message else ""
            self.status(
                f"[{event.index}/{event.total}] {event.step.bind}: {event.step.direction} "
                f"{_step_label(event.step)}{message} ({event.elapsed:.2f}s)"
            )
        elif isinstance(event, StepFailed):
            self.status(
                f"[{event.index}/{event.total}] {event.step.bind}: {event.step.direction} "
                f"{_step_label(event.step)} FAILED"
            )

    def result(self, result: MigrationResult) -> None:
        """The summary of a run, on stderr."""
        plan = result.plan
        if not plan.steps:
            self.status(_nothing_to_do(plan))
            return
        verb = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}[
            plan.direction
        ]
        if self.rich:
            from rich.table import Table
            from rich.text import Text

            table = Table(title="summary", title_justify="left", show_edge=False, pad_edge=False)
            table.add_column("bind", style="cyan")
            table.add_column("from")
            table.add_column("to", style="bold")
            table.add_column("steps", justify="right")
            table.add_column("time", justify="right", style="dim")
            for bind in result.binds:
                failed_here = result.failed is not None and result.failed.bind == bind.bind
                table.add_row(
                    Text(bind.bind + (" (failed)" if failed_here else "")),
                    Text(", ".join(bind.before) or "base"),
                    Text(", ".join(bind.after) or "base"),
                    str(len(bind.applied)),
                    f"{bind.elapsed:.2f}s",
                )
            self.err.print(table)
        else:
            for bind in result.binds:
                failed_here = result.failed is not None and result.failed.bind == bind.bind
                self.status(
                    f"{bind.bind}: {'stopped at' if failed_here else verb} "
                    f"{', '.join(bind.before) or 'base'} -> "
                    f"{', '.join(bind.after) or 'base'} ({len(bind.applied)} step"
                    f"{'s' * (len(bind.applied) != 1)}, {bind.elapsed:.2f}s)"
                )
        if result.failed is not None:
            # The error itself follows on the "Error:" line.
            self.status(
                f"Failed: {result.failed.bind}: {_step_label(result.failed)}"
                + (f" ({result.failed.path})" if result.failed.path else ""),
                style="red",
            )
            for step in result.not_run:
                self.status(f"Not run: {step.bind}: {_step_label(step)} {step.message}".rstrip())

    def sql(self, sql: dict[str, str]) -> None:
        """Offline SQL, one block per bind, on stdout."""
        several = len(sql) > 1
        for bind, text in sql.items():
            if several:
                self.line(f"-- bind: {bind}")
            self.stdout.write(text)
        self.stdout.flush()

    # -- state ----------------------------------------------------------------------

    def current(self, statuses: Sequence[BindStatus], verbose: bool = False) -> None:
        """Each bind's current revision(s), one row per bind."""
        if self.rich:
            from rich.table import Table
            from rich.text import Text

            table = Table(show_edge=False, pad_edge=False)
            table.add_column("bind", style="cyan")
            table.add_column("current", style="bold")
            table.add_column("state")
            if verbose:
                table.add_column("database", style="dim")
                table.add_column("version table", style="dim")
            for status in statuses:
                row = [Text(status.bind), Text(_current(status)), _state_text(status)]
                if verbose:
                    row += [Text(status.url), Text(status.version_table)]
                table.add_row(*row)
            self.out.print(table)
            for status in statuses:
                if not status.managed:
                    self.status(f"{status.bind}: not managed: {status.reason}.", style="dim")
            return
        for status in statuses:
            if not status.managed:
                self.line(f"{status.bind}: not managed ({status.reason})")
                continue
            note = "(head)" if status.up_to_date else f"({_state_plain(status)})"
            extra = f" {status.url} {status.version_table}" if verbose else ""
            self.line(f"{status.bind}: {_current(status)} {note}{extra}")

    def status_table(self, statuses: Sequence[BindStatus]) -> None:
        """The status matrix: where every bind stands."""
        if self.rich:
            from rich.table import Table
            from rich.text import Text

            table = Table(title="database status", title_justify="left")
            for name in (
                "bind",
                "database",
                "current",
                "heads",
                "pending",
                "state",
                "version table",
            ):
                # overflow="fold": a long URL wraps instead of being cut short.
                if name == "pending":
                    table.add_column(name, justify="right", overflow="fold")
                else:
                    table.add_column(name, overflow="fold")
            for status in statuses:
                table.add_row(
                    Text(status.bind, style="cyan"),
                    Text(status.url),
                    Text(_current(status), style="bold"),
                    Text(_heads(status)),
                    "" if status.pending is None else str(status.pending),
                    _state_text(status),
                    Text(status.version_table if status.managed else "-", style="dim"),
                )
            self.out.print(table)
            for status in statuses:
                if status.error is not None:
                    self.status(named(f"{status.bind}: {status.error}"), style="red")
                elif not status.managed:
                    self.status(f"{status.bind}: not managed: {status.reason}.", style="dim")
            return
        for status in statuses:
            if not status.managed:
                self.line(
                    f"{status.bind}: state={status.state}; reason={status.reason}; "
                    f"database={status.url}"
                )
                continue
            pending = "?" if status.pending is None else str(status.pending)
            self.line(
                f"{status.bind}: state={status.state}; current={_current(status)}; "
                f"heads={', '.join(status.heads) or 'base'}; pending={pending}; "
                f"database={status.url}; version_table={status.version_table}"
            )
            if status.error is not None:
                self.line(named(f"{status.bind}: error={status.error}"))

    def json(self, data: Mapping[str, Any]) -> None:
        """One JSON object on stdout."""
        self.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
        self.stdout.flush()

    def diffs(self, diffs: dict[str, list[Any]], skipped: Mapping[str, str]) -> None:
        """Differences between models and databases, per bind (and why a bind was not compared)."""
        for bind, reason in skipped.items():
            self.status(f"{bind}: {reason}.")
        for bind, items in diffs.items():
            if not items:
                self.status(f"{bind}: no changes detected")
                continue
            self.status(f"{bind}: {len(items)} change{'s' * (len(items) != 1)} detected")
            for item in items:
                self.line(f"{bind}: {describe_diff(item)}")


def _current(status: BindStatus) -> str:
    if status.state == "unreachable":
        return "?"
    if not status.managed:
        return "-"
    return ", ".join(status.current) or "base"


def _heads(status: BindStatus) -> str:
    return ", ".join(status.heads) or ("base" if status.managed else "-")


def _state_plain(status: BindStatus) -> str:
    if status.state == "pending":
        return f"{status.pending} pending"
    return status.state


def _state_text(status: BindStatus) -> Any:
    from rich.text import Text

    style = {
        "up to date": "green",
        "pending": "yellow",
        "multiple heads": "yellow",
        "not managed": "dim",
    }.get(status.state, "bold red")
    return Text(_state_plain(status), style=style)


# -- JSON -------------------------------------------------------------------------
#: Bumped when a key changes meaning or disappears; new keys may appear in any version.
JSON_VERSION = 1


def status_json(statuses: Sequence[BindStatus]) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "binds": [
            {
                "bind": s.bind,
                "database": s.url,
                "version_table": s.version_table,
                "current": list(s.current),
                "heads": list(s.heads),
                "pending": s.pending,
                "state": s.state,
                "managed": s.managed,
                "reason": s.reason,
                "error": None if s.error is None else named(str(s.error)),
            }
            for s in statuses
        ],
    }


def scripts_json(
    scripts: Sequence[Script], bind_of: Any, applied: set[str] | None = None
) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "revisions": [
            {
                "bind": bind_of(script),
                "revision": script.revision,
                "down_revisions": list(_tuple(script.down_revision)),
                "depends_on": list(_tuple(script.dependencies)),
                "branch_labels": sorted(script.branch_labels),
                "message": script.doc or "",
                "path": script.path,
                "is_head": script.is_head,
                "applied": None if applied is None else script.revision in applied,
            }
            for script in scripts
        ],
    }


def step_json(step: Step) -> dict[str, Any]:
    return {
        "bind": step.bind,
        "direction": step.direction,
        "revision": step.revision,
        "from": list(step.source),
        "to": list(step.destination),
        "message": step.message,
        "path": step.path,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "direction": plan.direction,
        "steps": [step_json(step) for step in plan.steps],
        "unchanged": list(plan.unchanged),
    }


def result_json(result: MigrationResult) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "direction": result.plan.direction,
        "ok": result.ok,
        "binds": [
            {
                "bind": b.bind,
                "from": list(b.before),
                "to": list(b.after),
                "applied": [step_json(step) for step in b.applied],
                "elapsed": round(b.elapsed, 6),
            }
            for b in result.binds
        ],
        "failed": None if result.failed is None else step_json(result.failed),
        "error": result.error,
        "not_run": [step_json(step) for step in result.not_run],
        "unchanged": list(result.plan.unchanged),
        "elapsed": round(result.elapsed, 6),
    }


def diffs_json(diffs: Mapping[str, list[Any]], skipped: Mapping[str, str]) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "changes_detected": any(diffs.values()),
        "binds": [
            {
                "bind": bind,
                "changes": [
                    {"kind": _diff_kind(item), "description": describe_diff(item)} for item in items
                ],
            }
            for bind, items in diffs.items()
        ],
        "not_compared": [{"bind": bind, "reason": reason} for bind, reason in skipped.items()],
    }


def error_json(message: str, exc: BaseException | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    for field_name in ("bind", "revision", "path"):
        error[field_name] = getattr(exc, field_name, None)
    return {"version": JSON_VERSION, "error": error}


def _diff_kind(diff: Any) -> str:
    return "modify" if isinstance(diff, list) else str(diff[0])


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def describe_diff(diff: Any) -> str:
    """One line for one of Alembic's ``compare_metadata`` diff entries."""
    if isinstance(diff, list):
        return "; ".join(describe_diff(d) for d in diff)
    kind = diff[0]
    if kind in {"add_table", "remove_table"}:
        return f"{kind.replace('_', ' ')} {diff[1].name}"
    if kind in {"add_column", "remove_column"}:
        return f"{kind.replace('_', ' ')} {diff[2]}.{diff[3].name}"
    if kind in {"add_index", "remove_index", "add_constraint", "remove_constraint"}:
        obj = diff[1]
        table = getattr(getattr(obj, "table", None), "name", "?")
        return f"{kind.replace('_', ' ')} {obj.name} on {table}"
    if kind in {"add_fk", "remove_fk"}:
        obj = diff[1]
        return f"{kind.replace('_', ' ')} {obj.name or '(unnamed)'} on {obj.parent.name}"
    if kind.startswith("modify_"):
        return f"{kind.replace('_', ' ')} {diff[2]}.{diff[3]}: {diff[5]!r} -> {diff[6]!r}"
    return repr(diff)


def _parents(script: Script) -> str:
    down = script.down_revision
    if down is None:
        return ""
    return ", ".join(down) if isinstance(down, tuple | list) else str(down)


def _notes(script: Script, applied: set[str] | None) -> str:
    notes = []
    if script.is_head:
        notes.append("head")
    if script.branch_labels:
        notes.append("label: " + ", ".join(sorted(script.branch_labels)))
    if script.is_branch_point:
        notes.append("branch point")
    if script.is_merge_point:
        notes.append("merge point")
    if applied is not None and script.revision in applied:
        notes.append("applied")
    return ", ".join(notes)


def _step_label(step: Step) -> str:
    if step.direction == "stamp":
        return step.label
    if step.direction == "upgrade":
        return f"{', '.join(step.source) or 'base'} -> {step.revision}"
    return f"{step.revision} -> {', '.join(step.destination) or 'base'}"


def _nothing_to_do(plan: Plan) -> str:
    binds = ", ".join(plan.unchanged) or "every selected bind"
    if plan.direction == "upgrade":
        return f"Nothing to do: {binds} up to date."
    return f"Nothing to do: {binds} already at the target."
