"""Rendering: Rich on a terminal, plain lines otherwise, chosen once per command.

Data goes to stdout, status and progress to stderr. Rich markup is never applied to
user data (revision messages, bind names): it is passed as ``Text``, never as markup.
User data is shown with its control characters escaped, newlines too wherever it sits
inside one line (:func:`one_line`); the JSON objects (:mod:`.report_json`) keep it as
it is.
Commands that errors suggest are named with the command group's real name.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from typing import IO
from typing import TYPE_CHECKING

from .errors import Command
from .errors import DEFAULT_GROUP
from .errors import FlaskAlembicError
from .plan import to_tuple

if TYPE_CHECKING:
    from alembic.script import Script
    from rich.console import Console
    from rich.console import ConsoleOptions
    from rich.live import Live

    from .adopt import Adoption
    from .adopt import FileChange
    from .adopt import Stamp
    from .executor import Event
    from .executor import StepFailed
    from .executor import StepFinished
    from .executor import StepStarted
    from .executor import StopRequested
    from .layout import Column
    from .lint import Finding
    from .lint import LintReport
    from .plan import MigrationResult
    from .plan import Plan
    from .plan import Step
    from .status import BindStatus
    from .writer import WrittenRevision

__all__ = [
    "Output",
    "PlainOutput",
    "Progress",
    "RichOutput",
    "describe_diff",
    "diff_kind",
    "is_interactive",
    "lint_summary",
    "one_line",
    "printable",
]

#: The bind of a revision: its ``Script``, or its id.
BindOf = Callable[["str | Script"], str]


#: Control characters other than tab and newline, shown escaped (as ``\x1b``): written
#: raw, a revision's text could recolour, rewrite or retitle the user's terminal. The
#: bidirectional controls (``\u202e``...) and the Unicode line and paragraph separators
#: are escaped too: unseen, they reorder what is shown or break a line.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in "\t\n"
} | {code: f"\\u{code:04x}" for code in (*_BIDI, 0x2028, 0x2029)}
#: The same, with newlines escaped as ``\n``: for a value inside one line of output.
_LINE_ESCAPES = _ESCAPES | {ord("\n"): "\\n"}


def printable(text: str) -> str:
    """``text`` with its control characters escaped, tabs and newlines kept."""
    return text.translate(_ESCAPES)


def one_line(text: str) -> str:
    """``text`` escaped to stay on one line: control characters and newlines escaped.

    For every value shown inside a line (a table cell, a status or progress line), where a
    newline would forge a line of output.
    """
    return text.translate(_LINE_ESCAPES)


def is_interactive(stream: IO[str]) -> bool:
    """Whether to use Rich: a terminal other than ``TERM=dumb``, or ``FORCE_COLOR`` set.

    ``NO_COLOR`` does not matter here: it removes colours, not the layout (see
    :func:`no_color`). A dumb terminal gets plain lines: it cannot redraw a live line.
    """
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def no_color() -> bool:
    """Whether Rich draws without colours: ``NO_COLOR`` set (no-color.org), unless
    ``FORCE_COLOR`` is. Bold, dim and italic stay: they are not colours."""
    return bool(os.environ.get("NO_COLOR")) and not os.environ.get("FORCE_COLOR")


def _forced_on_dumb() -> bool:
    return bool(os.environ.get("FORCE_COLOR")) and os.environ.get("TERM") == "dumb"


class Output:
    """One command's output. ``Output(...)`` chooses once: :class:`RichOutput` on a
    terminal (or with ``rich=True``), :class:`PlainOutput` otherwise.

    :param group: the name the command group is registered under, for the commands that
        messages suggest.
    """

    #: Whether this renderer draws with Rich.
    rich = False

    def __new__(cls, **options: Any) -> Output:
        if cls is Output:
            rich = options.get("rich")
            if rich is None:
                rich = is_interactive(options.get("stdout") or sys.stdout)
            cls = RichOutput if rich else PlainOutput
        return object.__new__(cls)

    def __init__(
        self,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        rich: bool | None = None,
        width: int | None = None,
        group: str = DEFAULT_GROUP,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.width = width
        self.group = group

    # -- what every renderer shares --------------------------------------------------

    def explain(self, error: FlaskAlembicError) -> str:
        """An error's one line, naming commands of this command group."""
        return error.render(self.group)

    def line(self, text: str = "") -> None:
        """A line of data on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def json(self, data: Mapping[str, Any]) -> None:
        """One JSON object on stdout."""
        self.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
        self.stdout.flush()

    def sql(self, sql: Mapping[str, str]) -> None:
        """Offline SQL on stdout: one block per bind, or per segment of an interleaved plan."""
        segments = getattr(sql, "segments", None) or tuple(sql.items())
        several = len(segments) > 1
        for bind, text in segments:
            if several:
                self.line(f"-- bind: {one_line(bind)}")
            self.stdout.write(text)
        self.stdout.flush()

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
            # The path goes to stdout only: on a terminal both streams show.
            self.status(_generated(item.bind, script))
            for change in item.changes:
                self.status(f"  {describe_diff(change)}")
            self.line(one_line(script.path))
        for item in written:
            for loss in item.losses:
                self.warning(
                    f"{loss} (revision {item.script.revision}); check it before upgrading."
                )

    def merged(self, scripts: Sequence[Script], bind_of: BindOf) -> None:
        """New merge revisions: their paths on stdout."""
        for script in scripts:
            self.status(_generated(bind_of(script), script))
            self.line(one_line(script.path))

    def diffs(self, diffs: Mapping[str, list[Any]], skipped: Mapping[str, str]) -> None:
        """Differences between models and databases, per bind (and why a bind was not compared)."""
        for bind, reason in skipped.items():
            self.status(f"{bind}: {reason}.")
        for bind, items in diffs.items():
            if not items:
                self.status(f"{bind}: no changes detected")
                continue
            self.status(f"{bind}: {len(items)} change{'s' * (len(items) != 1)} detected")
            for item in items:
                self.line(one_line(f"{bind}: {describe_diff(item)}"))

    def adoption(self, adoption: Adoption) -> None:
        """What ``adopt`` found and did on stderr; the settings to use, as Python, on stdout."""
        import pprint

        from .adopt import next_steps

        layout = adoption.layout
        where = f"{layout.script_location}"
        if layout.revisions != layout.script_location:
            where += f" (revisions in {layout.revisions})"
        self.status(f"Found {layout.kind.description}: {where}.", style="bold")
        for option in adoption.read:
            self.status(f"Read {option.setting} = {option.value!r} ({option.source}).")
        for note in adoption.notes:
            self.warning(note)
        for row in adoption.before:
            rows = ", ".join(row.rows) or "no revision"
            self.status(f"Before: bind {row.bind!r} records {rows} in {row.version_table}.")
        for change in adoption.files:
            self.status(_file_change(change, adoption.planned))
        for stamp in adoption.stamps:
            self.status(_stamp_line(stamp, adoption.planned))
        for key, value in adoption.settings.items():
            self.line(printable(f"{key} = {pprint.pformat(value, sort_dicts=False, width=88)}"))
        if adoption.after is not None:
            for status in adoption.after:
                self.status(f"After: {_adopted_state(status)}", style=_adopted_style(status))
                if status.error is not None:
                    self.status(f"{status.bind}: {self.explain(status.error)}", style="red")
        if adoption.planned:
            self.status("Planned only: nothing was changed.", style="dim")
        elif adoption.configured:
            self.status("The app already has these settings.", style="green")
        self.status(_render_parts(next_steps(adoption), self.group))

    # -- what each renderer draws in its own way ---------------------------------------

    def status(self, text: str, style: str = "") -> None:
        """A line of status on stderr (escaped by :func:`one_line`)."""
        raise NotImplementedError

    def error(self, message: str) -> None:
        """A one-line error on stderr."""
        raise NotImplementedError

    def warning(self, message: str) -> None:
        """A one-line warning on stderr."""
        raise NotImplementedError

    def scripts(
        self,
        title: str,
        scripts: Sequence[Script],
        bind_of: BindOf,
        *,
        verbose: bool = False,
        applied: set[str] | None = None,
        empty: str = "",
        current: set[str] | None = None,
    ) -> None:
        """A list of revisions, grouped by bind (or ``empty`` said on stderr); those in
        ``applied`` and ``current`` (the version tables' rows) are marked so."""
        if scripts:
            self._scripts(title, scripts, bind_of, verbose, applied, current)
        elif empty:
            self.status(empty)

    #: Draws ``scripts`` (not empty): ``(title, scripts, bind_of, verbose, applied, current)``.
    _scripts: Callable[
        [str, Sequence[Script], BindOf, bool, set[str] | None, set[str] | None], None
    ]

    def plan(self, plan: Plan, stream: str = "stdout", lint: LintReport | None = None) -> None:
        """The ordered steps of a plan: data on stdout, or a preview on stderr.

        :param lint: the findings of the plan's revisions: each step's unaccepted errors
            and warnings are shown with it, and a line on stderr says how to deal with them.
        """
        if plan.steps:
            self._plan(plan, to_stderr=stream == "stderr", lint=lint)
            if lint is not None and lint.open():
                self.status(_lint_note(lint, self.group), style="yellow")
        else:
            self.status(_nothing_to_do(plan))

    def _plan(self, plan: Plan, *, to_stderr: bool, lint: LintReport | None = None) -> None:
        raise NotImplementedError

    def lint(self, report: LintReport, *, empty: str) -> None:
        """``lint``'s findings on stdout, grouped by revision, each with its fix (an accepted
        one with its reason); then a summary line on stderr (or ``empty``, when no
        revision was linted)."""
        if not report.linted:
            self.status(empty)
            return
        if report.findings:
            self._findings(report)
        self.status(lint_summary(report))

    def _findings(self, report: LintReport) -> None:
        raise NotImplementedError

    def new_findings(self, report: LintReport) -> None:
        """The unaccepted findings of revisions just written: one line each, on stderr,
        and a line saying how to accept or fix them."""
        found = [f for f in report.findings if not f.accepted]
        for finding in found:
            self.status(
                f"Lint: {finding.bind}: {finding.revision}: {finding.severity} {finding.rule}: "
                f"{finding.message}",
                style=_SEVERITY_STYLE[finding.severity],
            )
        if found:
            revisions = list(dict.fromkeys(f.revision for f in found))
            self.status(
                'Accept a finding with lint_allow = {"rule": "reason"} in the revision file; '
                f"{Command('lint', *revisions).render(self.group)} shows how to fix each.",
                style="dim",
            )

    def result(self, result: MigrationResult) -> None:
        """The summary of a run, on stderr: each bind, then what failed and did not run."""
        if not result.plan.steps:
            self.status(_nothing_to_do(result.plan))
            return
        self._summary(result)
        # Each failure's error follows on the "Error:" line.
        for bind in result.failures:
            failed = bind.failed
            assert failed is not None
            self.status(
                f"Failed: {failed.bind}: {_step_label(failed)}"
                + (f" ({failed.path})" if failed.path else ""),
                style="red",
            )
        if result.ok:
            return
        # Its "(started)" line gets its end: the Error line says what was kept.
        for step in _interrupted(result):
            self.status(
                f"Interrupted: {step.bind}: {_step_label(step)}"
                + (f" ({step.path})" if step.path else ""),
                style="yellow",
            )
        for step in result.not_run:
            self.status(f"Not run: {step.bind}: {_step_label(step)} {step.message}".rstrip())

    def _summary(self, result: MigrationResult) -> None:
        raise NotImplementedError

    def progress(self, plan: Plan | None = None) -> Progress:
        """What shows a run's events as they come; started with the plan when given."""
        raise NotImplementedError

    def current(self, statuses: Sequence[BindStatus], verbose: bool = False) -> None:
        """Each bind's current revision(s), one row per bind."""
        raise NotImplementedError

    def status_table(self, statuses: Sequence[BindStatus]) -> None:
        """The status matrix: where every bind stands."""
        raise NotImplementedError


class Progress(AbstractContextManager["Progress"]):
    """Shows one run: :meth:`start` with the plan, then call it with each event."""

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, plan: Plan) -> None:
        """The plan is made and about to run."""

    def __call__(self, event: Event) -> None:
        """One of the executor's events."""

    def close(self) -> None:
        """The run is over: take any live display off the screen."""


class PlainOutput(Output):
    """Plain lines, for pipes, files and ``NO_COLOR``: no ANSI codes, no Rich."""

    def status(self, text: str, style: str = "") -> None:
        self.stderr.write(one_line(text) + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self.status(f"Error: {message}")

    def warning(self, message: str) -> None:
        self.status(f"Warning: {message}")

    def _scripts(
        self,
        title: str,
        scripts: Sequence[Script],
        bind_of: BindOf,
        verbose: bool,
        applied: set[str] | None,
        current: set[str] | None = None,
    ) -> None:
        for script in scripts:
            if verbose:
                self.line(f"Bind: {one_line(bind_of(script))}")
                # The revision in full, over several lines: newlines are its own.
                self.line(printable(script.log_entry.rstrip()))
                self.line()
                continue
            notes = _notes(script, applied, current, bind_of(script))
            suffix = f" ({notes})" if notes else ""
            self.line(
                one_line(
                    f"{bind_of(script)}: {_parents(script) or '<base>'} -> {script.revision}"
                    f"{suffix}, {script.doc or ''}".rstrip(", ")
                )
            )

    def _plan(self, plan: Plan, *, to_stderr: bool, lint: LintReport | None = None) -> None:
        for number, step in enumerate(plan.steps, 1):
            message = f" {step.message}" if step.message else ""
            text = f"{number}. {step.bind}: {plan.direction} {_step_label(step)}{message}"
            lines = [text]
            lines += [f"   {_finding_words(f)}" for f in _step_findings(lint, step)]
            for line in lines:
                if to_stderr:
                    self.status(f"plan {line}")
                else:
                    self.line(one_line(line))

    def _findings(self, report: LintReport) -> None:
        for finding in report.findings:
            if finding.accepted:
                words = f"accepted {finding.severity} {finding.rule}: {finding.message}"
                tail = f"; reason: {finding.reason}"
            else:
                words = _finding_words(finding)
                tail = f"; fix: {finding.fix}"
            self.line(one_line(f"{finding.bind}: {finding.revision}: {words}{tail}"))

    def progress(self, plan: Plan | None = None) -> Progress:
        progress = _PlainProgress(self)
        if plan is not None:
            progress.start(plan)
        return progress

    def _summary(self, result: MigrationResult) -> None:
        verb = _PAST[result.plan.direction]
        for bind in result.binds:
            count = len(bind.applied)
            before = ", ".join(bind.before) or "base"
            said = verb
            if _interrupted_here(result, bind.bind):
                said = "interrupted"
            elif _failed_here(result, bind.bind):
                said = "stopped at"
            elif not count:
                # The run stopped before this bind's turn.
                self.status(f"{bind.bind}: not run (at {before})")
                continue
            self.status(
                f"{bind.bind}: {said} "
                f"{before} -> {', '.join(bind.after) or 'base'} ({count} step"
                f"{'s' * (count != 1)}, {bind.elapsed:.2f}s)"
            )

    def current(self, statuses: Sequence[BindStatus], verbose: bool = False) -> None:
        for status in statuses:
            if not status.managed:
                self.line(one_line(f"{status.bind}: not managed ({status.reason})"))
                continue
            note = "(head)" if status.up_to_date else f"({_state_words(status)})"
            extra = f" {status.url} {status.version_table}" if verbose else ""
            self.line(one_line(f"{status.bind}: {_current(status)} {note}{extra}"))

    def status_table(self, statuses: Sequence[BindStatus]) -> None:
        for status in statuses:
            if not status.managed:
                self.line(
                    one_line(
                        f"{status.bind}: state={status.state}; reason={status.reason}; "
                        f"database={status.url}"
                    )
                )
                continue
            pending = "?" if status.pending is None else str(status.pending)
            self.line(
                one_line(
                    f"{status.bind}: state={status.state}; current={_current(status)}; "
                    f"heads={', '.join(status.heads) or 'base'}; pending={pending}; "
                    f"database={status.url}; version_table={status.version_table}"
                )
            )
            if status.error is not None:
                self.line(one_line(f"{status.bind}: error={self.explain(status.error)}"))


class _PlainProgress(Progress):
    """A log line as each step starts and as it ends (or fails): a log shows which step
    is running when a run hangs. A signal's notice is said at once."""

    def __init__(self, output: PlainOutput) -> None:
        self.output = output

    def __call__(self, event: Event) -> None:
        from .executor import StepFailed
        from .executor import StepFinished
        from .executor import StepStarted
        from .executor import StopRequested

        if isinstance(event, StepStarted):
            self.output.status(f"{_event_prefix(event)}{_message(event.step)} (started)")
        elif isinstance(event, StepFinished):
            self.output.status(
                f"{_event_prefix(event)}{_message(event.step)} ({event.elapsed:.2f}s)"
            )
        elif isinstance(event, StepFailed):
            self.output.status(f"{_event_prefix(event)} FAILED")
        elif isinstance(event, StopRequested):
            self.output.status(_stop_notice(event))


def _event_prefix(event: StepStarted | StepFinished | StepFailed) -> str:
    step = event.step
    return f"[{event.index}/{event.total}] {step.bind}: {step.direction} {_step_label(step)}"


def _message(step: Step) -> str:
    return f" {step.message}" if step.message else ""


def _stop_notice(event: StopRequested) -> str:
    """What happens now that a run got its first SIGINT or SIGTERM, and after a second."""
    name = signal.Signals(event.signal).name
    if not event.can_abort:
        return (
            f"{name} received: the run stops once the running steps end; no further step "
            "starts. Binds are migrating side by side, so these steps cannot be aborted: "
            "each finishes and commits, and further signals are ignored."
        )
    again = "Press Ctrl-C again" if name == "SIGINT" else "Send SIGINT or SIGTERM again"
    return (
        f"{name} received: the run stops once the running step ends; no further step "
        f"starts. {again} to abort that step instead: it is then rolled back where the "
        "database can undo it."
    )


def _clock(seconds: float) -> str:
    """A running time that stays short: ``4.2s``, ``3m07s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{second:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


class RichOutput(Output):
    """Rich tables and a live progress display, for a terminal. Rich is imported on first
    drawing, never for a command that prints nothing."""

    rich = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._out: Console | None = None
        self._err: Console | None = None

    def _console(self, stream: IO[str]) -> Console:
        from rich.console import Console

        return Console(
            file=stream,
            force_terminal=True,
            highlight=False,
            markup=False,
            emoji=False,
            width=self.width,
            soft_wrap=False,
            no_color=no_color(),
            # Rich finds no colours in TERM=dumb; FORCE_COLOR asks for them all the same.
            color_system="standard" if _forced_on_dumb() else "auto",
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

    def status(self, text: str, style: str = "") -> None:
        from rich.text import Text

        self.err.print(Text(one_line(text), style=style))

    def _labelled(self, label: str, style: str, message: str) -> None:
        from rich.text import Text

        text = Text(label, style=style)
        text.append(one_line(message))
        self.err.print(text)

    def error(self, message: str) -> None:
        self._labelled("Error: ", "bold red", message)

    def warning(self, message: str) -> None:
        self._labelled("Warning: ", "bold yellow", message)

    def _table(self, title: str | None = None, **options: Any) -> Any:
        """A table in the one style every table shares: its title above, on the left."""
        from rich.table import Table

        return Table(title=title, title_justify="left", show_edge=False, pad_edge=False, **options)

    def _draw(
        self, console: Console, title: str, columns: Sequence[Column], drop: Sequence[str]
    ) -> None:
        """``columns`` as a table fitted to ``console``'s width, one line per row: ids whole,
        other text shortened in the middle, columns left out in ``drop``'s order (said
        below the table)."""
        from rich.text import Text

        from .layout import fit
        from .layout import ID

        fitted = fit(columns, console.width, drop)
        table = self._table(title)
        for column, width in zip(fitted.columns, fitted.widths, strict=True):
            table.add_column(
                column.header,
                justify=column.justify,
                style=column.style,
                width=width,
                no_wrap=True,
                # Never "…": ids are not cut (and "ignore" keeps no justification).
                overflow="ignore" if column.kind == ID else "ellipsis",
            )
        rows = len(columns[0].values) if columns else 0
        for row in range(rows):
            table.add_row(
                *(
                    Text(c.values[row], style=c.styles[row] if c.styles else "")
                    for c in fitted.columns
                )
            )
        if fitted.width <= console.width:
            console.print(table)
        else:  # Wider than the terminal, which wraps it, rather than ids cut to fit.
            console.print(_Wide(table, fitted.width), crop=False)
        if fitted.left_out:
            left_out = ", ".join(fitted.left_out)
            self.status(f"Left out to fit {console.width} columns: {left_out}.", style="dim")

    def _scripts(
        self,
        title: str,
        scripts: Sequence[Script],
        bind_of: BindOf,
        verbose: bool,
        applied: set[str] | None,
        current: set[str] | None = None,
    ) -> None:
        from .layout import Column
        from .layout import ID

        if verbose:
            self._revisions(title, scripts, bind_of, applied, current)
            return
        binds = [bind_of(script) for script in scripts]
        columns = [
            _bind_column(binds),
            Column(
                header="revision",
                kind=ID,
                values=[one_line(s.revision) for s in scripts],
                style="bold",
            ),
            Column(header="parent", kind=ID, values=[_parents(s) or "<base>" for s in scripts]),
            Column(header="message", values=[one_line(s.doc or "") for s in scripts], least=16),
            Column(
                header="notes",
                values=[
                    _notes(s, applied, current, b) for s, b in zip(scripts, binds, strict=True)
                ],
                least=10,
                style="dim",
                shorten=_shorten_notes,
            ),
        ]
        self._draw(self.out, title, columns, ("parent", "notes"))

    def _revisions(
        self,
        title: str,
        scripts: Sequence[Script],
        bind_of: BindOf,
        applied: set[str] | None,
        current: set[str] | None,
    ) -> None:
        """Each revision in full, as the plain form prints it: a block of named lines,
        ids whole; a long path or docstring wraps (never cut)."""
        from rich.table import Table
        from rich.text import Text

        from ._alembic_compat import resolved_dependencies

        self.out.print(Text(title, style="italic"))
        for script in scripts:
            bind = bind_of(script)
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(overflow="fold")
            parents = to_tuple(script.down_revision)
            created, doc = _docstring(script)
            rows: list[tuple[str, str, str]] = [
                ("revision", one_line(script.revision), "bold"),
                ("bind", one_line(bind), "cyan"),
                # One id a line: two long ids side by side could be wider than the terminal.
                ("merges" if len(parents) > 1 else "parent", _lines(parents) or "<base>", ""),
            ]
            depends = [f"{dep} (bind {bind_of(dep)})" for dep in resolved_dependencies(script)]
            if depends:
                rows.append(("depends on", _lines(depends), ""))
            labels = sorted(script.branch_labels)
            if labels:
                rows.append(("branch labels", one_line(", ".join(labels)), ""))
            notes = _notes(script, applied, current, bind, labels=False)
            if notes:
                rows.append(("notes", notes, ""))
            if created:
                rows.append(("created", one_line(created), ""))
            rows.append(("path", one_line(script.path), "dim"))
            if doc:
                rows.append(("message", doc, ""))
            for key, value, style in rows:
                grid.add_row(key, Text(value, style=style))
            self.out.print()
            self.out.print(grid)

    def _plan(self, plan: Plan, *, to_stderr: bool, lint: LintReport | None = None) -> None:
        from .layout import Column
        from .layout import FIXED
        from .layout import ID

        count = len(plan)
        steps = plan.steps
        columns = [
            Column(
                header="#",
                kind=FIXED,
                values=[str(n) for n in range(1, count + 1)],
                justify="right",
                style="dim",
            ),
            _bind_column([s.bind for s in steps]),
            Column(
                header="step",
                kind=ID,
                # The ids alone: an id column is never shortened, words would not fit.
                values=[one_line(_step_label(s, purge=False)) for s in steps],
                style="bold",
            ),
        ]
        if any(s.message or s.purge for s in steps):  # a plain stamp has none: no empty column
            columns.append(
                Column(
                    # A stamp runs no revision: its only words are the purge's.
                    header="message" if any(s.message for s in steps) else "note",
                    values=[one_line(s.message or (_PURGE if s.purge else "")) for s in steps],
                    least=10,
                )
            )
        found = [_step_findings(lint, step) for step in steps]
        title = f"{plan.direction} plan ({count} step{'s' * (count != 1)})"
        # The numbers go after the message: the rows' order says them too, and a step
        # between two 32-character ids takes 68 cells.
        console = self.err if to_stderr else self.out
        self._draw(console, title, columns, ("message", "note", "#"))
        if any(found):
            from rich.text import Text

            # Under the table, each with its step's number: a column of them would take
            # the room of the messages.
            for number, findings in enumerate(found, 1):
                for finding in findings:
                    text = Text()
                    text.append(f"{number}. ", style="dim")
                    text.append(
                        f"{finding.severity} {finding.rule}",
                        style=_SEVERITY_STYLE[finding.severity],
                    )
                    text.append(one_line(f": {finding.message}"))
                    console.print(text, soft_wrap=True)

    def _findings(self, report: LintReport) -> None:
        """Each revision's findings under a line naming it; rule ids and revision ids are
        never cut, messages and fixes wrap."""
        from rich.table import Table
        from rich.text import Text

        groups: dict[tuple[str, str], list[Finding]] = {}
        for finding in report.findings:
            groups.setdefault((finding.bind, finding.revision), []).append(finding)
        label = max(len("accepted"), *(len(f.severity) for f in report.findings))
        rule = max(len(f.rule) for f in report.findings)
        for number, ((bind, revision), findings) in enumerate(groups.items()):
            if number:
                self.out.print()
            heading = Text(one_line(bind), style="cyan")
            heading.append("  ")
            heading.append(one_line(revision), style="bold")
            if findings[0].path:
                heading.append("  " + one_line(findings[0].path), style="dim")
            # Wrapped by the terminal, not cut: the ids stay whole.
            self.out.print(heading, soft_wrap=True)
            # Padded by hand: every revision's grid has the same columns.
            grid = Table.grid(padding=(0, 2), pad_edge=True)
            grid.add_column(no_wrap=True)
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold")
            for finding in findings:
                if finding.accepted:
                    grid.add_row(
                        Text("accepted".ljust(label), style="dim"),
                        Text(finding.rule.ljust(rule), style="dim"),
                        Text(one_line(f"{finding.message} ({finding.severity})"), style="dim"),
                    )
                    grid.add_row("", "", Text(one_line(f"reason: {finding.reason}"), style="dim"))
                    continue
                style = _SEVERITY_STYLE[finding.severity]
                grid.add_row(
                    Text(finding.severity.ljust(label), style=style),
                    Text(finding.rule.ljust(rule), style="bold"),
                    Text(one_line(finding.message)),
                )
                grid.add_row("", "", Text(one_line(f"fix: {finding.fix}"), style="dim"))
            self.out.print(grid)

    def progress(self, plan: Plan | None = None) -> Progress:
        progress = _LiveProgress(self.err)
        if plan is not None:
            progress.start(plan)
        return progress

    def _summary(self, result: MigrationResult) -> None:
        from .layout import Column
        from .layout import FIXED
        from .layout import ID

        binds = result.binds
        columns = [
            Column(
                header="bind",
                values=[
                    one_line(b.bind)
                    + (" (failed)" if _failed_here(result, b.bind) else "")
                    + (" (interrupted)" if _interrupted_here(result, b.bind) else "")
                    for b in binds
                ],
                least=BIND_LEAST,
                style="cyan",
            ),
            Column(header="from", kind=ID, values=[_ids(b.before) or "base" for b in binds]),
            Column(
                header="to", kind=ID, values=[_ids(b.after) or "base" for b in binds], style="bold"
            ),
            Column(
                header="steps",
                kind=FIXED,
                values=[str(len(b.applied)) for b in binds],
                justify="right",
            ),
            Column(
                header="time",
                kind=FIXED,
                values=[f"{b.elapsed:.2f}s" for b in binds],
                justify="right",
                style="dim",
            ),
        ]
        self._draw(self.err, "summary", columns, ("time", "steps", "from"))

    def current(self, statuses: Sequence[BindStatus], verbose: bool = False) -> None:
        from .layout import Column
        from .layout import FIXED
        from .layout import ID

        columns = [
            _bind_column([s.bind for s in statuses]),
            Column(header="current", kind=ID, values=[_current(s) for s in statuses], style="bold"),
            Column(
                header="state",
                kind=FIXED,
                values=[_state_words(s) for s in statuses],
                styles=[_state_style(s) for s in statuses],
            ),
        ]
        if verbose:
            columns += _where(statuses)
        self._draw(self.out, "current revisions", columns, ("version table", "database"))
        self._below_table(statuses, errors=False)

    def _below_table(self, statuses: Sequence[BindStatus], *, errors: bool = True) -> None:
        """Below a table: each bind's error, or why it is not managed."""
        for status in statuses:
            if errors and status.error is not None:
                self.status(f"{status.bind}: {self.explain(status.error)}", style="red")
            elif not status.managed:
                self.status(f"{status.bind}: not managed: {status.reason}.", style="dim")

    def status_table(self, statuses: Sequence[BindStatus]) -> None:
        from .layout import Column
        from .layout import FIXED
        from .layout import ID

        database, version_table = _where(statuses)
        columns = [
            _bind_column([s.bind for s in statuses]),
            database,
            Column(header="current", kind=ID, values=[_current(s) for s in statuses], style="bold"),
            Column(header="heads", kind=ID, values=[_heads(s) for s in statuses]),
            Column(
                header="pending",
                kind=FIXED,
                values=["" if s.pending is None else str(s.pending) for s in statuses],
                justify="right",
            ),
            Column(
                header="state",
                kind=FIXED,
                # The count is in the pending column.
                values=[str(s.state) for s in statuses],
                styles=[_state_style(s) for s in statuses],
            ),
            version_table,
        ]
        drop = ("version table", "database", "heads", "pending")
        self._draw(self.out, "database status", columns, drop)
        self._below_table(statuses)


def _bind_column(binds: Sequence[str]) -> Column:
    """The ``bind`` column: names whole up to :data:`BIND_LEAST` cells."""
    from .layout import Column

    values = [one_line(b) for b in binds]
    return Column(header="bind", values=values, least=BIND_LEAST, style="cyan")


def _where(statuses: Sequence[BindStatus]) -> list[Column]:
    """The ``database`` and ``version table`` columns; the latter is idle when every bind
    uses the default table (or is not managed)."""
    from .layout import Column

    tables = [one_line(s.version_table) if s.managed else "-" for s in statuses]
    return [
        Column(header="database", values=[one_line(s.url) for s in statuses], least=16, url=True),
        Column(
            header="version table",
            values=tables,
            idle=set(tables) <= {"alembic_version", "-"},
            style="dim",
        ),
    ]


#: A bind name is what ``--bind`` takes: a table keeps it whole up to this many cells, and
#: leaves a column out rather than cut a name that short.
BIND_LEAST = 24


class _Wide:
    """A renderable drawn ``width`` cells wide, whatever the console's width."""

    def __init__(self, renderable: Any, width: int) -> None:
        self.renderable = renderable
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Any:
        from rich.segment import Segment

        lines = console.render_lines(self.renderable, options.update_width(self.width), pad=False)
        for line in lines:
            # The terminal wraps what passes its edge: trailing blanks (a title's, a last
            # cell's padding) would make lines of nothing.
            while line and not line[-1].control and not line[-1].text.rstrip():
                line.pop()
            if line and not line[-1].control:
                last = line[-1]
                line[-1] = Segment(last.text.rstrip(), last.style)
            yield from line
            yield Segment.line()


class _LiveProgress(Progress):
    """The live area of a run on a terminal: a line per running step (binds migrating side
    by side stay readable), its clock and the run's ticking as Rich refreshes.

    The area is transient: at the end the summary takes its place, so a step that went
    well is shown in the plan and, while the run lasts, here. A failed step is printed
    above the area with its error, at once, and stays; so does a signal's notice.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.view = _LiveView()
        self.live: Live | None = None

    def start(self, plan: Plan) -> None:
        if not plan.steps:
            return
        from rich.live import Live

        self.view = _LiveView(total=len(plan.steps))
        self.live = Live(self.view, console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def __call__(self, event: Event) -> None:
        from rich.text import Text

        from .executor import StepFailed
        from .executor import StopRequested

        if self.live is None:
            return
        if isinstance(event, StepFailed):
            text = Text("✗ ", style="bold red")
            text.append(one_line(f"{event.step.bind}: {_step_label(event.step)}"), style="red")
            text.append(one_line(f"{_message(event.step)}: {event.error}"))
            self.console.print(text)
        elif isinstance(event, StopRequested):
            self.console.print(Text(one_line(_stop_notice(event)), style="bold yellow"))
        # Drawn at Rich's next refresh, some eight times a second: not once per event,
        # which would slow a run of many quick steps.
        self.view.record(event)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class _LiveView:
    """What the live area shows, drawn anew at each refresh so that its clocks tick.

    Events come from the run's threads and drawing from Rich's refresh thread: both go
    through ``lock``, held only to copy or change a few values.
    """

    #: How many finished steps stay in view: the area keeps a bounded height.
    RECENT = 3

    def __init__(self, total: int = 0) -> None:
        from collections import deque

        self.lock = threading.Lock()
        self.total = total
        self.started = time.perf_counter()
        #: Bind -> (its running step's event, when it started, its spinner).
        self.running: dict[str, tuple[StepStarted, float, Any]] = {}
        self.recent: deque[StepFinished] = deque(maxlen=self.RECENT)
        self.done = 0
        self.stopping = False

    def record(self, event: Event) -> None:
        from rich.spinner import Spinner

        from .executor import StepFailed
        from .executor import StepFinished
        from .executor import StepStarted
        from .executor import StopRequested

        with self.lock:
            if isinstance(event, StepStarted):
                spinner = Spinner("dots", style="cyan")
                self.running[event.step.bind] = (event, time.perf_counter(), spinner)
            elif isinstance(event, StepFinished | StepFailed):
                self.running.pop(event.step.bind, None)
                if isinstance(event, StepFinished):
                    self.done += 1
                    self.recent.append(event)
            elif isinstance(event, StopRequested):
                self.stopping = True

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Any:
        from rich.table import Table
        from rich.text import Text

        from .layout import cells
        from .layout import shorten_middle

        now = time.perf_counter()
        with self.lock:
            recent = list(self.recent)
            running = sorted(self.running.values(), key=lambda item: item[0].index)
            done, stopping = self.done, self.stopping
        # (icon, bind, the step's ids from the longest form to the shortest, its message,
        # its time): one line each.
        rows: list[tuple[Any, str, list[str], str, Text]] = [
            (
                Text("✓", style="green"),
                one_line(finished.step.bind),
                [one_line(_step_label(finished.step)), one_line(_step_id(finished.step))],
                one_line(finished.step.message),
                Text(f"{finished.elapsed:.2f}s", style="dim"),
            )
            for finished in recent
        ]
        for started, at, spinner in running:
            step, label = started.step, _step_label(started.step)
            forms = [
                f"step {started.index} of {started.total}: {label}",
                f"{started.index}/{started.total} {label}",
                f"{started.index}/{started.total} {_step_id(step)}",
                _step_id(step),
            ]
            rows.append(
                (
                    spinner,
                    one_line(step.bind),
                    [one_line(form) for form in forms],
                    one_line(step.message),
                    Text(_clock(now - at), style="bold"),
                )
            )
        # Each row on one line, however narrow the terminal: the message is shortened
        # first, then the bind's name, then the step is said in fewer words; its ids stay
        # whole unless the terminal is narrower than one of them.
        room = options.max_width - 4  # the icon, and a space between each two columns
        room -= max((cells(row[4].plain) for row in rows), default=0)
        names = max((cells(row[1]) for row in rows), default=0)
        longest = max((cells(row[2][0]) for row in rows), default=0)
        bind = min(names, max(8, room - longest))
        natural = max(
            (cells(row[2][0]) + (cells(row[3]) + 1 if row[3] else 0) for row in rows), default=1
        )
        text_width = max(min(room - bind, natural), 1)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, width=bind)
        grid.add_column(no_wrap=True, width=text_width, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        for icon, name, forms, message, elapsed in rows:
            ids = next((form for form in forms if cells(form) <= text_width), forms[-1])
            text = Text(ids)
            space = text_width - cells(ids) - 1
            if message and space >= 4:  # a word's start and end around "…", at least
                text.append(" " + shorten_middle(message, space))
            grid.add_row(icon, Text(shorten_middle(name, bind), style="cyan"), text, elapsed)
        footer = Text(f"{done} of {self.total} steps done, {_clock(now - self.started)}", "dim")
        if stopping:
            steps = "step" if len(running) <= 1 else "steps"
            footer.append(f" - stopping after the running {steps}", style="yellow")
        footer.no_wrap = True
        footer.overflow = "ellipsis"
        yield grid
        yield footer


_PAST = {"upgrade": "upgraded", "downgrade": "downgraded", "stamp": "stamped"}


def _failed_here(result: MigrationResult, bind: str) -> bool:
    return any(failure.bind == bind for failure in result.failures)


def _interrupted(result: MigrationResult) -> list[Step]:
    """The steps a second signal abandoned (rolled back): started, neither applied, nor
    failed, nor left to run."""
    done = {step for bind in result.binds for step in bind.applied}
    failed = {bind.failed for bind in result.failures}
    return [
        step
        for step in result.plan.steps
        if step not in done and step not in failed and step not in result.not_run
    ]


def _interrupted_here(result: MigrationResult, bind: str) -> bool:
    return any(step.bind == bind for step in _interrupted(result))


def _current(status: BindStatus) -> str:
    if status.state == "unreachable" or (status.state == "migrating" and not status.current):
        return "?"
    if not status.managed:
        return "-"
    # Read from the database: a version table may hold anything.
    return one_line(", ".join(status.current)) or "base"


def _heads(status: BindStatus) -> str:
    return one_line(", ".join(status.heads)) or ("base" if status.managed else "-")


def _state_words(status: BindStatus) -> str:
    if status.state == "pending":
        return f"{status.pending} pending"
    return str(status.state)


def _state_style(status: BindStatus) -> str:
    return {
        "up to date": "green",
        "pending": "yellow",
        "multiple heads": "yellow",
        "migrating": "yellow",
        "not managed": "dim",
    }.get(status.state, "bold red")


def diff_kind(diff: Any) -> str:
    """The kind of one of Alembic's diff entries: its operation, or ``modify`` for a group."""
    return "modify" if isinstance(diff, list) else str(diff[0])


def describe_diff(diff: Any) -> str:
    """One line for one of Alembic's ``compare_metadata`` diff entries (names escaped)."""
    return one_line(_diff_words(diff))


def _diff_words(diff: Any) -> str:
    if isinstance(diff, list):
        return "; ".join(_diff_words(d) for d in diff)
    kind = diff[0]
    words = kind.replace("_", " ")
    if kind in {"add_table", "remove_table"}:
        return f"{words} {_qualified(diff[1].schema, diff[1].name)}"
    if kind in {"add_column", "remove_column"}:
        return f"{words} {_qualified(diff[1], diff[2])}.{diff[3].name}"
    if kind in {"add_index", "remove_index", "add_constraint", "remove_constraint"}:
        obj = diff[1]
        table = getattr(obj, "table", None)
        where = _qualified(table.schema, table.name) if table is not None else "?"
        return f"{words} {obj.name} on {where}"
    if kind in {"add_fk", "remove_fk"}:
        obj = diff[1]
        where = _qualified(obj.parent.schema, obj.parent.name)
        return f"{words} {obj.name or '(unnamed)'} on {where}"
    if kind.startswith("modify_"):
        return f"{words} {_qualified(diff[1], diff[2])}.{diff[3]}: {diff[5]!r} -> {diff[6]!r}"
    return repr(diff)


def _qualified(schema: str | None, name: str) -> str:
    """A table's name, with its schema when it has one (another schema than the default)."""
    return f"{schema}.{name}" if schema else name


def _ids(revisions: Sequence[str]) -> str:
    return one_line(", ".join(revisions))


def _lines(revisions: Sequence[str]) -> str:
    return "\n".join(one_line(revision) for revision in revisions)


def _parents(script: Script) -> str:
    return _ids(to_tuple(script.down_revision))


def _docstring(script: Script) -> tuple[str, str]:
    """A revision's create date and its docstring in full, without the lines that repeat
    the revision and its parents."""
    created = ""
    lines = []
    for line in (script.longdoc or "").splitlines():
        key, colon, value = line.strip().partition(":")
        if colon and key == "Create Date":
            created = value.strip()
        elif not (colon and key in {"Revision ID", "Revises"}):
            lines.append(line.rstrip())
    return created, printable("\n".join(lines).strip())


def _notes(
    script: Script,
    applied: set[str] | None,
    current: set[str] | None = None,
    bind: str | None = None,
    *,
    labels: bool = True,
) -> str:
    """Head, labels other than the bind's own name, branch or merge point, applied, current."""
    notes = []
    if script.is_head:
        notes.append("head")
    own = sorted(label for label in script.branch_labels if label != bind)
    if labels and own:
        notes.append("label: " + ", ".join(own))
    if script.is_branch_point:
        notes.append("branch point")
    if script.is_merge_point:
        notes.append("merge point")
    if applied is not None and script.revision in applied:
        notes.append("applied")
    if current is not None and script.revision in current:
        notes.append("current")
    return one_line(", ".join(notes))


def _shorten_notes(text: str, width: int) -> str:
    """Notes in ``width`` cells: whole notes left out (``…`` in their place), the least
    telling first (labels, then branch and merge points, then head), so that ``applied``
    and ``current`` stay readable; cut in the middle only when those alone do not fit."""
    from .layout import cells
    from .layout import shorten_middle

    notes = text.split(", ")

    def rank(note: str) -> int:
        if note.startswith("label: "):
            return 0
        return {"branch point": 1, "merge point": 1, "head": 2}.get(note, 3)

    kept = list(notes)
    for note in sorted(notes, key=rank):
        if cells(", ".join(kept)) <= width or rank(note) == 3:
            break
        kept[kept.index(note)] = "…"
        kept = [n for i, n in enumerate(kept) if not (n == "…" and i and kept[i - 1] == "…")]
    return shorten_middle(", ".join(kept), width)


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "blue"}


def _finding_words(finding: Finding) -> str:
    return f"{finding.severity} {finding.rule}: {finding.message}"


def _step_findings(lint: LintReport | None, step: Step) -> list[Finding]:
    """The unaccepted errors and warnings of the revision a step runs (none for a step
    that runs no revision, or without a report)."""
    if lint is None or step.revision is None:
        return []
    return [
        f
        for f in lint.of(step.bind, step.revision)
        if not f.accepted and f.severity in {"error", "warning"}
    ]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1 and word != 'info')}"


def _counts(findings: Sequence[Finding]) -> str:
    """``1 error, 2 warnings``: findings counted by severity, the most serious first."""
    from .lint_rules import SEVERITIES

    return ", ".join(
        _plural(n, severity)
        for severity in SEVERITIES
        if (n := sum(f.severity == severity for f in findings))
    )


def lint_summary(report: LintReport) -> str:
    """``lint``'s last line: revisions linted, unaccepted findings by severity, accepted."""
    count = len(report.linted)
    linted = f"Linted {_plural(count, 'revision')}"
    if not report.findings:
        return f"{linted}: no findings."
    open_ = [f for f in report.findings if not f.accepted]
    accepted = len(report.findings) - len(open_)
    from .lint_rules import SEVERITIES

    counts = ", ".join(
        _plural(sum(f.severity == severity for f in open_), severity) for severity in SEVERITIES
    )
    return f"{linted}: {counts}; {accepted} accepted."


def _lint_note(lint: LintReport, group: str) -> str:
    """The line under a plan whose revisions have unaccepted findings."""
    found = lint.open()
    revisions = list(dict.fromkeys(f.revision for f in found))
    return (
        f"Lint: {_counts(found)} in {_plural(len(revisions), 'revision')}; "
        f"{Command('lint', *revisions).render(group)} shows how to fix each, and "
        'lint_allow = {"rule": "reason"} in a revision file accepts one.'
    )


#: What a stamp step that empties its version table first says of it.
_PURGE = "emptying the version table first"


def _step_label(step: Step, *, purge: bool = True) -> str:
    """A step's ids, ``FROM -> TO``; for a stamp emptying its version table, said after
    them unless ``purge`` is false."""
    if step.direction == "stamp":
        return step.label + (f" ({_PURGE})" if step.purge and purge else "")
    if step.direction == "upgrade":
        return f"{', '.join(step.source) or 'base'} -> {step.revision}"
    return f"{step.revision} -> {', '.join(step.destination) or 'base'}"


def _step_id(step: Step) -> str:
    """A step in one id: the revision it runs (its label, for a stamp)."""
    return step.revision or step.label


def _generated(bind: str, script: Script) -> str:
    """The status line of a revision just written (its path is the data, on stdout)."""
    message = f" {script.doc}" if script.doc else ""
    return f"Generated {bind}: {script.revision}{message}"


def _nothing_to_do(plan: Plan) -> str:
    binds = ", ".join(plan.unchanged) or "every selected bind"
    if plan.direction == "upgrade":
        return f"Nothing to do: {binds} up to date."
    return f"Nothing to do: {binds} already at the target."


def _file_change(change: FileChange, planned: bool) -> str:
    if change.action == "write":
        verb = "Would write" if planned else "Wrote"
        return (
            f"{verb} {change.path} (bind {change.bind!r}, revision {change.revision}, "
            f"from {change.old})."
        )
    if change.action == "archive":
        verb = "Would move" if planned else "Moved"
        return f"{verb} {change.path} to {change.old}."
    verb = "Would replace" if planned else "Replaced"
    return f"{verb} {change.path} with Flask-Alembic's template."


def _stamp_line(stamp: Stamp, planned: bool) -> str:
    old = ", ".join(stamp.old) or "no revision"
    new = ", ".join(stamp.new) or "no revision"
    if set(stamp.old) == set(stamp.new):
        return f"Keep: bind {stamp.bind!r} stays at {old} in {stamp.version_table}."
    verb = "Would stamp" if planned else "Stamped"
    return f"{verb} bind {stamp.bind!r}: {old} -> {new} in {stamp.version_table}."


def _adopted_state(status: BindStatus) -> str:
    if not status.managed:
        return f"bind {status.bind!r} is not managed ({status.reason})."
    return (
        f"bind {status.bind!r}: {_state_words(status)} at {_current(status)} "
        f"(heads {', '.join(status.heads) or 'base'}) in {status.version_table}."
    )


def _adopted_style(status: BindStatus) -> str:
    from .status import State

    if status.state in {State.UP_TO_DATE, State.NOT_MANAGED}:
        return "green" if status.managed else "dim"
    return "yellow" if status.state == State.PENDING else "red"


def _render_parts(parts: Sequence[object], group: str) -> str:
    """Text and commands (``Command``) joined, the commands named with ``group``."""
    from .errors import Command

    return "".join(p.render(group) if isinstance(p, Command) else str(p) for p in parts)
