"""The ``flask db`` command group.

Each command parses its options, makes one call to the extension and one to the
renderer. Errors become messages and exit codes here, and only here.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import re
import signal
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import cast
from typing import Literal
from typing import NoReturn
from typing import TYPE_CHECKING
from typing import TypeVar

import click
from flask import current_app
from flask.cli import AppGroup
from flask.cli import ScriptInfo

from . import report
from . import report_json
from ._collector import collector_paused
from .errors import AmbiguousTargetError
from .errors import Command
from .errors import DEFAULT_GROUP
from .errors import FlaskAlembicError
from .errors import MigrationFailedError
from .errors import MigrationInterruptedError
from .errors import NotUpToDateError
from .errors import VersionTableMismatchError
from .redact import scrub
from .report import Output
from .status import State

if TYPE_CHECKING:
    from alembic.script import Script

    from .api import AlembicAPI
    from .lint import LintReport
    from .plan import Plan
    from .status import BindStatus

__all__ = ["db"]

F = TypeVar("F", bound=Callable[..., Any])
_JSON = "flask_alembic.json"
_TRACEBACK = "flask_alembic.traceback"
_X_ARGUMENTS = "flask_alembic.x_arguments"

_DIRECTORY = (
    "--directory does not exist here: set the migrations folder in the app's config, "
    'ALEMBIC = {{"script_location": "migrations"}}, a path relative to the app\'s root path '
    "(not to the current directory), or run {adopt} to find it."
)
_REVISION_OPTIONS = {
    "--autogenerate": "--autogenerate is the default here: revision compares the models with "
    "the databases; --empty writes an empty revision.",
    "--head": "--head is --parent here.",
    "--branch-label": "--branch-label is --label here.",
    "--version-path": "--version-path is --path here.",
    "--sql": "revision has no --sql here: it writes a file; {upgrade_sql} prints the SQL of "
    "the migrations.",
}
#: Flask-Migrate 4.1's options that this package spells otherwise or does not have, by
#: command ("*": every command): what to say instead of "No such option".
_FLASK_MIGRATE_OPTIONS: dict[str, dict[str, str]] = {
    "*": {"-d": _DIRECTORY, "--directory": _DIRECTORY},
    "revision": _REVISION_OPTIONS,
    "migrate": _REVISION_OPTIONS,
    "merge": {"--branch-label": "--branch-label is --label here."},
    "init": {
        "--multidb": "--multidb does not exist here: every bind gets a history of its own in "
        "the one migrations folder.",
        "-t": "--template does not exist here: init writes Flask-Alembic's template; edit its "
        "script.py.mako afterwards.",
        "--template": "--template does not exist here: init writes Flask-Alembic's template; "
        "edit its script.py.mako afterwards.",
        "--package": "--package does not exist here: add the __init__.py files yourself; they "
        "are never read as revisions.",
    },
}
#: Flask-Migrate 4.1's commands that this package does not have.
_FLASK_MIGRATE_COMMANDS = {
    "list-templates": "list-templates does not exist here: there is one template, which {init} "
    "writes.",
}


def _foreign_option(ctx: click.Context, command: str, exc: click.NoSuchOption) -> NoReturn:
    """Say how this package spells a Flask-Migrate option, or raise ``exc`` as it is."""
    name = exc.option_name.split("=", 1)[0]
    message = _FLASK_MIGRATE_OPTIONS.get(command, {}).get(name) or _FLASK_MIGRATE_OPTIONS["*"].get(
        name
    )
    if message is None:
        raise exc
    group = _group_name(ctx)
    raise click.UsageError(
        message.format(
            upgrade_sql=Command("upgrade", "--sql").render(group),
            show=Command("show", "REVISION").render(group),
            adopt=Command("adopt").render(group),
        ),
        ctx,
    ) from None


@contextmanager
def _signals_kept() -> Iterator[None]:
    """Put SIGINT's and SIGTERM's handlers back as they were when the command ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    """An interrupted run is ending: more signals must not cut its summary short."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


class _Command(click.Command):
    """Answers a Flask-Migrate option with this package's spelling (see
    ``_FLASK_MIGRATE_OPTIONS``) instead of "No such option"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            _foreign_option(ctx, self.name or "", exc)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # A section listing only --help says nothing the reader did not just type.
        help_option = self.get_help_option(ctx)
        if any(isinstance(p, click.Option) and p is not help_option for p in self.params):
            super().format_options(ctx, formatter)
        else:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text("This command takes no options.")


def _summary(command: click.Command) -> str:
    """A command's first sentence, whole: click cuts it at ~45 characters with "..."."""
    return command.get_short_help_str(limit=1_000)


class _DbGroup(AppGroup):
    """Turns Flask-Alembic and database errors into one line and an exit code."""

    command_class = _Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            _foreign_option(ctx, "*", exc)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        message = _FLASK_MIGRATE_COMMANDS.get(args[0]) if args else None
        if message is not None and self.get_command(ctx, args[0]) is None:
            ctx.fail(message.format(init=Command("init").render(_group_name(ctx))))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Every command with its whole first sentence; an alias once, as an alias."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            if command.name is not None and command.name != name:
                rows.append((name, f"Alias of {command.name}."))
            else:
                rows.append((name, _summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        with collector_paused(), _signals_kept():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        # Handle errors inside the app context: scrubbing secrets needs the app's binds.
        app = ctx.ensure_object(ScriptInfo).load_app()
        with app.app_context():
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
                raise
            except FlaskAlembicError as exc:
                if _want_traceback(ctx):
                    raise
                _fail(ctx, exc.render(_group_name(ctx)), exc.exit_code, exc)
            except Exception as exc:
                from alembic.util import CommandError
                from sqlalchemy.exc import SQLAlchemyError

                if not isinstance(exc, CommandError | SQLAlchemyError) or _want_traceback(ctx):
                    raise
                _fail(ctx, str(exc), 1, exc)


class _TargetCommand(_Command):
    """Reads ``-1``, ``-2``... as a relative TARGET, not as an unknown option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            # Options that take a value: a "-1" right after one is that option's value.
            valued = {
                name
                for param in self.params
                if isinstance(param, click.Option) and not param.is_flag
                for name in param.opts
            }
            kept: list[str] = []
            relative: list[str] = []
            for arg in args:
                if re.fullmatch(r"-\d+", arg) and not (kept and kept[-1] in valued):
                    relative.append(arg)
                else:
                    kept.append(arg)
            if relative:
                args = [*kept, "--", *relative]
        return super().parse_args(ctx, args)


class _Seconds(click.FloatRange):
    """A number of seconds, 0 or more; ``inf`` waits without limit, ``nan`` is refused."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):  # compares as neither above nor below zero: would wait forever
            self.fail(
                f"{value!r} is not a number of seconds; use inf to wait without limit.", param, ctx
            )
        return seconds


class _NewFolder(click.Path):
    """A folder that may not exist yet, but that no file stands in the way of."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        result = super().convert(value, param, ctx)
        for parent in Path(os.fsdecode(result)).absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    self.fail(
                        f"{os.fsdecode(value)!r} cannot be created: {parent} is a file, not a "
                        "folder. Choose another folder.",
                        param,
                        ctx,
                    )
                break
        return result


def _want_traceback(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get(_TRACEBACK)) or current_app.debug


def _group_name(ctx: click.Context | None = None) -> str:
    """The name the app registered the command group under (``db`` unless it chose another)."""
    current = ctx if ctx is not None else click.get_current_context(silent=True)
    while current is not None and not isinstance(current.command, _DbGroup):
        current = current.parent
    return (current.info_name if current is not None else None) or DEFAULT_GROUP


def _output(*, plain: bool = False) -> Output:
    """The renderer for this command: plain for ``--json``, else chosen by the terminal."""
    return Output(rich=False if plain else None, group=_group_name())


def _fail(ctx: click.Context, message: str, code: int, exc: BaseException) -> None:
    message = " ".join(message.split())
    try:
        secrets = _extension().secrets()
    except (KeyError, RuntimeError):  # the extension itself may be what is broken
        secrets = ()
    # Error text may quote a revision file or a database: no raw escape sequences.
    message = report.printable(scrub(message, secrets))
    output = Output(group=_group_name(ctx))
    if ctx.find_root().meta.get(_JSON):
        output.json(report_json.error_json(message, exc))
    output.error(message)
    ctx.exit(code)


def _set_flag(key: str) -> Callable[[click.Context, click.Parameter, bool], bool]:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.find_root().meta[key] = True
        return value

    return callback


def _store_x_arguments(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    ctx.find_root().meta[_X_ARGUMENTS] = value


def x_option(f: F) -> F:
    return click.option(
        "-x",
        "--x-arg",
        "x_arguments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Passed to the migrations, which read it with context.get_x_argument() (repeatable).",
    )(f)


@click.group("db", cls=_DbGroup)
@click.option(
    "--traceback",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_flag(_TRACEBACK),
    help="Show the full traceback of an error.",
)
@click.option(
    "-x",
    "--x-arg",
    multiple=True,
    expose_value=False,
    callback=_store_x_arguments,
    metavar="KEY=VALUE",
    help="Passed to the migrations that upgrade and downgrade run, and to revision's "
    "autogenerate, as with their -x.",
)
def db() -> None:
    """Manage database migrations with Alembic."""


def _extension() -> AlembicAPI:
    return cast("AlembicAPI", current_app.extensions["alembic"])


def bind_option(f: F) -> F:
    return click.option(
        "--bind",
        "binds",
        multiple=True,
        metavar="NAME",
        help="Only this bind (database); repeat for several. Default: every bind.",
    )(f)


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_set_flag(_JSON),
        help="Print one JSON object on stdout instead of text.",
    )(f)


def _check_binds(binds: tuple[str, ...], *, unmanaged: bool = False) -> list[str] | None:
    """The binds named with --bind (``None`` for all); unknown names are usage errors.

    So are binds that are not managed, unless ``unmanaged`` (for the commands that list
    every bind).
    """
    if not binds:
        return None
    _extension().registry.select(binds, unmanaged=unmanaged)
    return list(binds)


def _first_error(statuses: list[BindStatus]) -> FlaskAlembicError | None:
    """The first bind that could not be read; a bind being migrated was, in a way: it says
    who migrates it, and is no failure; nor is a warning about a pending bind's version
    table."""
    return next(
        (
            s.error
            for s in statuses
            if s.error is not None
            and s.state != State.MIGRATING
            and not isinstance(s.error, VersionTableMismatchError)
        ),
        None,
    )


def _as_listed(extension: AlembicAPI, script: Script) -> Script:
    """A revision just written, as ``heads`` and ``log`` list it: read from the migrations
    folder again, so that it carries the branch labels it inherits (its bind's name)."""
    return extension.script.get_revision(script.revision) or script


def _raise_first_error(statuses: list[BindStatus]) -> None:
    error = _first_error(statuses)
    if error is not None:
        raise error


@db.command()
def mkdir() -> None:
    """Create the migrations folder if it does not exist."""
    path = _extension().mkdir()
    _output().status(f"Migrations folder: {path}")


@db.command()
def init() -> None:
    """Flask-Migrate's init: create the migrations folder, or say that it exists."""
    from .config import script_location

    existed = script_location(current_app).is_dir()
    path = _extension().mkdir().resolve()
    if existed:
        _output().status(f"The migrations folder already exists: {path}")
    else:
        _output().status(f"Created the migrations folder: {path}")


@db.command()
@click.argument("message")
@click.option("--empty", is_flag=True, help="Write an empty revision, without autogenerating.")
@click.option(
    "-b",
    "--branch",
    metavar="NAME",
    help="Flask-Alembic 3's independent branch: a bind's name selects that bind; another "
    "name starts a branch at base in the default bind (or the --bind given), later "
    "revisions extend NAME@head.",
)
@click.option("-p", "--parent", help="Build on this revision instead of the bind's head.")
@click.option("--splice", is_flag=True, help="Allow a parent that is not a head (new branch).")
@click.option(
    "-d",
    "--depend",
    multiple=True,
    help="A revision this one depends on, such as another bind's head: BIND@head (repeatable).",
)
@click.option(
    "-l", "--label", multiple=True, help="A branch label for the new revision (repeatable)."
)
@click.option("--path", type=click.Path(), help="Write the file in this version location.")
@click.option("--rev-id", help="Use this revision id instead of a random one.")
@x_option
@json_option
@bind_option
def revision(
    message: str,
    empty: bool,
    branch: str | None,
    parent: str | None,
    splice: bool,
    depend: tuple[str, ...],
    label: tuple[str, ...],
    path: str | None,
    rev_id: str | None,
    x_arguments: tuple[str, ...],
    as_json: bool,
    binds: tuple[str, ...],
) -> None:
    """Write a revision for each bind whose models changed (autogenerate)."""
    extension = _extension()
    mode = _lint_mode()  # a bad setting fails before any file is written
    given = click.get_current_context().find_root().meta.get(_X_ARGUMENTS, ())
    x_list = [*given, *x_arguments]
    selected = _check_binds(binds)
    written = extension.write_revisions(
        message,
        empty=empty,
        parent=parent,
        splice=splice,
        depend=list(depend) or None,
        label=list(label) or None,
        path=path,
        rev_id=rev_id,
        bind=selected,
        branch=branch,
        x_arguments=x_list or None,
    )
    output = _output(plain=as_json)
    findings = None
    if written.scripts and mode != "off":
        ids = [script.revision for script in written.scripts]
        findings = _lint_if_possible(
            output, lambda: extension.lint(*ids, x_arguments=x_list or None)
        )
    if as_json:
        listed = [
            dataclasses.replace(item, script=_as_listed(extension, item.script))
            for item in written.revisions
        ]
        output.json(report_json.written_json(listed, written.skipped, extension.bind_of, findings))
    else:
        output.written(written.revisions, written.skipped)
        if findings is not None:
            output.new_findings(findings)
    for warning in written.warnings:
        output.warning(warning)


def _lint_mode() -> str:
    from .config import lint_mode

    return lint_mode(current_app)


def _lint_if_possible(output: Output, lint: Callable[[], LintReport]) -> LintReport | None:
    """Lint for ``revision`` and ``upgrade --plan`` ("warn"), or, without the linter's SQL
    parser, say in one line that nothing was linted ("refuse" and ``lint`` refuse instead)."""
    from .lint_sql import available

    if not available():
        output.status(
            "Not linted: the linter needs its SQL parser: pip install 'Flask-Alembic[lint]'."
        )
        return None
    return lint()


def _message_option(command: click.Command, *, required: bool = True) -> click.Command:
    """Let ``command`` take its MESSAGE as ``-m/--message`` too, as Flask-Migrate and
    Alembic spell it; without ``required``, no message is an empty one, as in Flask-Migrate."""
    for param in command.params:
        if param.name == "message":
            param.required = False
    command.params.insert(
        0,
        click.Option(
            ["-m", "--message", "message_option"],
            metavar="MESSAGE",
            help="The revision's message, instead of the MESSAGE argument.",
        ),
    )
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def with_message(message: str | None, message_option: str | None, **options: Any) -> Any:
        if message is not None and message_option is not None:
            raise click.UsageError("Give the message once: as MESSAGE or with -m, not both.")
        text = message if message is not None else message_option
        if text is None:
            if required:
                raise click.UsageError("Missing the revision's message: give it as MESSAGE or -m.")
            text = ""
        return callback(message=text, **options)

    command.callback = with_message
    return command


def _alias(command: click.Command) -> click.Command:
    """A copy of ``command`` whose parameters can be changed without changing its own.

    Each parameter is copied, not deeply: what is changed on them is rebound, never
    changed in place, and a deep copy of every option costs as much as a tenth of
    ``flask db --help``.
    """
    alias = copy.copy(command)
    alias.params = [copy.copy(param) for param in command.params]
    return alias


#: Flask-Migrate's ``migrate``: ``revision`` under another name (it autogenerates too),
#: where the message may be left out.
migrate_command = _message_option(_alias(revision), required=False)
migrate_command.name = "migrate"
for _param in migrate_command.params:
    # Flask-Alembic 3's -d (--depend) is Flask-Migrate's --directory: on migrate, the
    # Flask-Migrate command, -d gets the Flask-Migrate answer.
    if _param.name == "depend":
        _param.opts = [o for o in _param.opts if o != "-d"]
migrate_command.help = (
    "Alias of revision (Flask-Migrate's name): write a revision for each bind whose models "
    "changed. MESSAGE may be left out."
)
db.add_command(migrate_command)
_message_option(revision)


def _refuse_default_step_with_several_binds(
    extension: AlembicAPI, selected: list[str] | None
) -> None:
    """``downgrade`` without a target goes one step back, which needs one bind: with
    several, say so in the user's terms (they typed no ``-1``)."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("target") is not click.core.ParameterSource.DEFAULT:
        return
    names = selected if selected is not None else list(extension.registry.names)
    if len(names) < 2:
        return
    raise AmbiguousTargetError(
        "A downgrade without a target goes one step back, which needs a single bind; "
        f"several are selected ({', '.join(names)}).",
        revision="-1",
        hint=(
            "Name one, as in ",
            Command("downgrade", "--bind", names[0]),
            f", or give the target as '{names[0]}@-1'.",
        ),
    )


def _migrate(
    direction: Literal["upgrade", "downgrade", "stamp"],
    target: str,
    *,
    sql: bool,
    tag: str | None,
    binds: tuple[str, ...],
    as_json: bool,
    output_dir: str | None,
    no_lock: bool,
    lock_timeout: float | None,
    parallel: int | None,
    plan_only: bool = False,
    with_dependencies: bool = False,
    purge: bool = False,
    x_arguments: tuple[str, ...] = (),
) -> None:
    """What upgrade, downgrade and stamp share: their options arrive here as given."""
    extension = _extension()
    given = click.get_current_context().find_root().meta.get(_X_ARGUMENTS, ())
    x_list = [*given, *x_arguments] if direction != "stamp" else []
    selected = _check_binds(binds)
    output = _output(plain=as_json)
    if not sql and output_dir is not None:
        raise click.UsageError("--output-dir goes with --sql.")
    if sql and as_json:
        raise click.UsageError("--sql prints SQL; it cannot be combined with --json.")
    if sql and plan_only:
        raise click.UsageError(
            "--plan shows the steps and --sql their SQL: choose one (neither runs anything)."
        )
    if sql and purge:
        raise click.UsageError(
            "--purge cannot be used with --sql: the SQL would not empty the version table."
        )
    if direction == "downgrade" and not sql:
        _refuse_default_step_with_several_binds(extension, selected)
    if sql:
        kwargs: dict[str, Any] = {}
        if direction == "stamp":
            kwargs["purge"] = purge
        if direction == "upgrade":
            kwargs["with_dependencies"] = with_dependencies
        if x_list:
            kwargs["x_arguments"] = x_list
        statements = getattr(extension, direction)(target, selected, sql=True, tag=tag, **kwargs)
        if output_dir is not None:
            for path in extension.write_sql(statements, output_dir):
                output.status(f"Wrote {path}")
        else:
            output.sql(statements)
        return
    if plan_only:
        plan = extension.plan(
            direction, target, selected, with_dependencies=with_dependencies, purge=purge
        )
        lint = None
        if plan.direction == "upgrade" and plan.steps and _lint_mode() != "off":
            lint = _lint_if_possible(
                output, lambda: extension.lint_plan(plan, tag=tag, x_arguments=x_list or None)
            )
        if as_json:
            output.json(report_json.plan_json(plan, lint))
        else:
            output.plan(plan, lint=lint)
        return

    with output.progress() as progress:
        # "warn" leaves a run as it was: linting runs each revision's upgrade() once
        # more, offline, code with side effects included. "refuse" lints, and the plan
        # shows why it refuses.
        linted: list[LintReport] = []
        on_lint = linted.append if direction == "upgrade" and _lint_mode() == "refuse" else None

        def on_plan(plan: Plan) -> None:
            if plan.steps:
                output.plan(plan, stream="stderr", lint=linted[0] if linted else None)
            progress.start(plan)

        try:
            result = extension.migrate(
                direction,
                target,
                selected,
                with_dependencies=with_dependencies,
                purge=purge,
                lock=not no_lock,
                lock_timeout=lock_timeout,
                tag=tag,
                x_arguments=x_list or None,
                parallel=parallel,
                on_plan=on_plan,
                on_lint=on_lint,
                on_event=progress,
                on_wait=lambda bind: output.status(
                    f"Waiting for another process migrating bind {bind.name!r}..."
                ),
            )
        except MigrationFailedError as exc:
            if isinstance(exc, MigrationInterruptedError):
                _ignore_signals()
            progress.close()
            if exc.result is not None:
                failed = exc.result
                output.json(report_json.result_json(failed)) if as_json else output.result(failed)
            if as_json:  # the JSON above carries the error; say it once on stderr too
                output.error(output.explain(exc))
                raise click.exceptions.Exit(exc.exit_code) from None
            raise
    if as_json:
        output.json(report_json.result_json(result))
    output.result(result)


#: The options upgrade, downgrade and stamp share: (declarations, settings), in the
#: order ``--help`` lists them.
_MIGRATION_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--parallel",),
        {
            "type": click.IntRange(min=1),
            "help": "How many independent binds may migrate at once (default 4, or "
            "ALEMBIC_PARALLEL); 1 runs them one after another.",
        },
    ),
    (("--no-lock",), {"is_flag": True, "help": "Do not take the per-database migration lock."}),
    (
        ("--lock-timeout",),
        {
            "type": _Seconds(min=0),
            "help": "Seconds to wait for another process's migration (default 300, or "
            "ALEMBIC_LOCK_TIMEOUT).",
        },
    ),
    (
        ("--plan", "--dry-run", "plan_only"),
        {"is_flag": True, "help": "Show the ordered steps and run nothing."},
    ),
    (("--tag",), {"help": "A tag passed to the migration environment."}),
    (
        ("--output-dir",),
        {
            "type": _NewFolder(),
            "help": "With --sql: write one BIND.sql file per bind into this folder.",
        },
    ),
    (("--sql",), {"is_flag": True, "help": "Print the SQL instead of running it (offline mode)."}),
)


def _migration_options(direction: str, default: str) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.argument("target", default=default)(f)
        # Decorators apply bottom-up: the last applied is listed first.
        for declarations, settings in reversed(_MIGRATION_OPTIONS):
            f = click.option(*declarations, **settings)(f)
        return json_option(bind_option(f))

    return decorate


@db.command(cls=_TargetCommand)
@_migration_options("upgrade", "heads")
@x_option
@click.option(
    "--with-dependencies",
    is_flag=True,
    help="Also upgrade other binds as far as this upgrade depends on them.",
)
def upgrade(**options: Any) -> None:
    """Upgrade the databases to TARGET (default: every bind to its heads).

    \b
    TARGET is one of:
      heads       every selected bind to all its heads (the default)
      head        to the bind's one head (refused if it has several)
      BIND@head   one bind to its heads, e.g. analytics@head
      +1, 1, +2   that many steps up (one bind: add --bind NAME)
      REVISION    to a revision: its id, or a start of it that is unique
      BIND@REV    a revision of that bind, e.g. analytics@ab12
      FROM:TO     with --sql only: the SQL from FROM (default base) to TO

    \b
    Examples:
      flask db upgrade
      flask db upgrade --plan
      flask db upgrade --bind analytics +1
      flask db upgrade --sql --bind analytics base:heads
    """
    _migrate("upgrade", **options)


@db.command(cls=_TargetCommand)
@_migration_options("downgrade", "-1")
@x_option
def downgrade(**options: Any) -> None:
    """Downgrade the databases to TARGET (default: one step back; name a bind).

    \b
    TARGET is one of:
      -1, 1, -2   that many steps down (one bind: add --bind NAME); -1 is
                  the default
      REVISION    down to a revision: its id, or a start of it that is unique
      BIND@REV    a revision of that bind, e.g. analytics@ab12
      BIND@-1     one step down in that bind
      base        every selected bind down to no revision at all
      FROM:TO     with --sql (required there): the SQL from FROM down to TO

    \b
    Examples:
      flask db downgrade --bind analytics
      flask db downgrade --bind analytics 2 --plan
      flask db downgrade analytics@ab12
      flask db downgrade --sql --bind analytics ab12:base
    """
    _migrate("downgrade", **options)


@db.command(cls=_TargetCommand)
@_migration_options("stamp", "heads")
@click.option("--purge", is_flag=True, help="Empty the version table before stamping.")
def stamp(**options: Any) -> None:
    """Record TARGET in the version tables without running migrations.

    \b
    TARGET is one of:
      heads       every selected bind's heads (the default)
      REVISION    a revision: its id, or a start of it that is unique
      BIND@REV    a revision of that bind, e.g. analytics@ab12
      base        no revision: empty the version table

    \b
    Examples:
      flask db stamp --plan
      flask db stamp --bind analytics ab12
    """
    _migrate("stamp", **options)


#: The options ``upgrade``, ``downgrade`` and ``stamp`` list first in ``--help``, in this
#: order: those most used; the rarer (locks, parallel runs, tags) follow.
_COMMON_FIRST = ("binds", "plan_only", "sql", "output_dir", "as_json", "with_dependencies")


def _common_first(command: click.Command) -> None:
    rank = {name: number for number, name in enumerate(_COMMON_FIRST)}
    command.params.sort(
        key=lambda p: (isinstance(p, click.Option), rank.get(p.name or "", len(rank)))
    )


for _command in (upgrade, downgrade, stamp):
    _common_first(_command)


@db.command()
@click.argument("revisions", nargs=-1)
@click.option("-m", "--message", help="The merge revision's message.")
@click.option("-l", "--label", multiple=True, help="A branch label for the merge revision.")
@click.option("--rev-id", help="Use this revision id instead of a random one.")
@json_option
@bind_option
def merge(
    revisions: tuple[str, ...],
    message: str | None,
    label: tuple[str, ...],
    rev_id: str | None,
    as_json: bool,
    binds: tuple[str, ...],
) -> None:
    """Write a revision merging REVISIONS (default: the heads of a bind)."""
    extension = _extension()
    named: list[str] = _check_binds(binds) or []
    targets: list[str | None] = [*named] or [None]
    if len(targets) > 1 and (revisions or rev_id):
        raise click.UsageError("REVISIONS and --rev-id need a single --bind.")
    scripts = [
        extension.merge(
            list(revisions) or "heads",
            message=message,
            label=list(label) or None,
            rev_id=rev_id,
            bind=name,
        )
        for name in targets
    ]
    if as_json:
        listed = [_as_listed(extension, script) for script in scripts]
        _output(plain=True).json(report_json.scripts_json(listed, extension.bind_of))
        return
    _output().merged(scripts, extension.bind_of)


def _not_up_to_date(
    statuses: Sequence[BindStatus], group: str = DEFAULT_GROUP, *, chosen: bool = False
) -> str:
    """The one line ``status --check`` and ``current --check-heads`` end with: the binds
    that are not at their heads, each with its way there.

    :param chosen: whether the user chose the binds with ``--bind``: the upgrade it
        suggests then names them too.
    """
    behind = [s for s in statuses if s.managed and not s.up_to_date]
    pending = [
        s.bind
        for s in behind
        if s.state == State.PENDING and not isinstance(s.error, VersionTableMismatchError)
    ]
    managed = [s.bind for s in statuses if s.managed]
    fixes: list[str] = []
    if pending:
        # Every bind behind: upgrade them all; else name them, so no other bind moves.
        every = pending == managed and not chosen
        named = [] if every else [a for b in pending for a in ("--bind", b)]
        fixes.append(
            f"{', '.join(pending)} {'is' if len(pending) == 1 else 'are'} behind: run "
            f"{Command('upgrade', *named).render(group)}"
        )
    for s in behind:
        if s.state == State.PENDING and s.bind not in pending:
            # Upgrading would create tables that exist: its warning says what to check.
            fixes.append(
                f"{s.bind}'s version table disagrees with its database: check the bind's "
                "version_table setting (see the warning above)"
            )
        elif s.state == State.MULTIPLE_HEADS:
            merge = Command("merge", "--bind", s.bind).render(group)
            upgrade = Command("upgrade", "--bind", s.bind).render(group)
            fixes.append(f"{s.bind} has several heads: run {merge}, then {upgrade}")
        elif s.state == State.MIGRATING:
            fixes.append(
                f"{s.bind} is being migrated by another process: run "
                f"{Command('status').render(group)} again once it has finished"
            )
        elif s.state == State.UNKNOWN_REVISION:
            fixes.append(
                f"{s.bind} is at a revision its scripts do not have: deploy the code that has "
                "it, or record the right one with "
                f"{Command('stamp', '--bind', s.bind, 'REV').render(group)}"
            )
        elif s.state == State.UNREACHABLE:
            fixes.append(
                f"{s.bind} is unreachable: check its database URL and that its server is up"
            )
    return f"Not up to date: {'; '.join(fixes)}."


@db.command()
@click.option("--check", is_flag=True, help="Exit 1 unless every bind is up to date.")
@json_option
@bind_option
def status(check: bool, as_json: bool, binds: tuple[str, ...]) -> None:
    """Show where every database stands: current revision, heads, pending steps."""
    statuses = _extension().status(_check_binds(binds, unmanaged=True))
    output = _output(plain=as_json)
    if as_json:
        output.json(report_json.status_json(statuses, output.group))
    else:
        output.status_table(statuses)
    if check and not all(s.up_to_date for s in statuses if s.managed):
        output.status(_not_up_to_date(statuses, output.group, chosen=bool(binds)))
        raise click.exceptions.Exit(1)


@db.command()
@click.option("--check-heads", is_flag=True, help="Exit 1 unless every bind is at its heads.")
@click.option("-v", "--verbose", is_flag=True, help="Show the database and version table.")
@json_option
@bind_option
def current(check_heads: bool, verbose: bool, as_json: bool, binds: tuple[str, ...]) -> None:
    """Show the revision each database is at."""
    statuses = _extension().status(_check_binds(binds, unmanaged=True))
    output = _output(plain=as_json)
    if as_json:
        output.json(report_json.status_json(statuses, output.group))  # errors are in it: one object
        error = _first_error(statuses)
        if error is not None:
            output.error(output.explain(error))
            raise click.exceptions.Exit(1)
    else:
        output.current(statuses, verbose=verbose)
    for row in statuses:
        if row.error is not None and row.error is not _first_error([row]):
            output.status(f"{row.bind}: {output.explain(row.error)}")
    if check_heads and not all(s.up_to_date for s in statuses if s.managed):
        # A bind that cannot be read is not at its heads either: the check's own line
        # ends the output, as it does for status --check.
        error = _first_error(statuses)
        if error is not None:
            output.error(output.explain(error))
        if not as_json:
            output.line("Database is not on all head revisions")  # Flask-Alembic 3's words
        output.status(_not_up_to_date(statuses, output.group, chosen=bool(binds)))
        raise click.exceptions.Exit(1)
    _raise_first_error(statuses)


@db.command()
@click.option("-v", "--verbose", is_flag=True, help="Show each revision in full, as show does.")
@click.option(
    "--resolve-dependencies",
    is_flag=True,
    help="Leave out a head that another revision of its bind depends on.",
)
@json_option
@bind_option
def heads(verbose: bool, resolve_dependencies: bool, as_json: bool, binds: tuple[str, ...]) -> None:
    """Show the latest revision of each bind."""
    extension = _extension()
    scripts = extension.heads(_check_binds(binds), resolve_dependencies=resolve_dependencies)
    if as_json:
        _output(plain=True).json(report_json.scripts_json(scripts, extension.bind_of))
        return
    _output().scripts(
        "heads", scripts, extension.bind_of, verbose=verbose, empty="No revisions yet."
    )


@db.command()
@click.option("-v", "--verbose", is_flag=True, help="Show each revision in full, as show does.")
@json_option
@bind_option
def branches(verbose: bool, as_json: bool, binds: tuple[str, ...]) -> None:
    """Show the revisions where a history branches."""
    extension = _extension()
    found = extension.branches(_check_binds(binds))
    if as_json:
        _output(plain=True).json(report_json.scripts_json(found, extension.bind_of))
        return
    _output().scripts(
        "branch points",
        found,
        extension.bind_of,
        verbose=verbose,
        empty="No branch points.",
    )


@db.command("log")
@click.option("--start", default="base", help="The oldest revision to show.")
@click.option("--end", default="heads", help="The newest revision to show.")
@click.option(
    "-r",
    "--rev-range",
    metavar="START:END",
    help="--start and --end in one, as Alembic writes a range (either side may be empty).",
)
@click.option(
    "-i", "--indicate-current", is_flag=True, help="Mark the revision each database is at."
)
@click.option("-v", "--verbose", is_flag=True, help="Show each revision in full, as show does.")
@json_option
@bind_option
def log(
    start: str,
    end: str,
    rev_range: str | None,
    indicate_current: bool,
    verbose: bool,
    as_json: bool,
    binds: tuple[str, ...],
) -> None:
    """Show the revisions, newest first, marking those applied to their database.

    history is another name for this command.
    """
    extension = _extension()
    selected = _check_binds(binds)
    if rev_range is not None:
        start, end = _rev_range(rev_range, start, end)
    scripts = extension.log(start, end, selected)
    rows = extension.status(selected)
    applied = extension.applied(selected, statuses=rows)
    # A bind whose version table could not be read: its marks are unknown, not "none".
    unknown = [
        row.bind
        for row in rows
        if row.managed
        and row.error is not None
        and not isinstance(row.error, VersionTableMismatchError)
    ]
    current: set[str] | None = None
    if indicate_current:
        # A bind that cannot be read hides no other: the warning below says its marks,
        # current included, are unknown.
        current = {
            rev for row in rows if row.managed and row.bind not in unknown for rev in row.current
        }
    output = _output(plain=as_json)
    for row in rows:
        if row.bind in unknown:
            why = Command("status", "--bind", row.bind).render(output.group)
            output.warning(
                f"{row.bind}: which revisions are applied is unknown ({row.state}), so none "
                f"is marked. Run {why} to see why and how to fix it."
            )
    if as_json:
        output.json(report_json.scripts_json(scripts, extension.bind_of, applied, unknown=unknown))
        return
    output.scripts(
        "history",
        scripts,
        extension.bind_of,
        verbose=verbose,
        applied=applied,
        empty="No revisions yet.",
        current=current,
    )


def _rev_range(value: str, start: str, end: str) -> tuple[str, str]:
    """``START:END`` (Alembic's spelling of a range) as ``(start, end)``."""
    ctx = click.get_current_context()
    given = [
        name
        for name in ("start", "end")
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(f"--rev-range replaces --start and --end: drop --{given[0]}.")
    lower, colon, upper = value.partition(":")
    if not colon:
        raise click.UsageError(
            f"--rev-range {value!r} is not a range: write START:END, e.g. base:heads or ab12:."
        )
    return lower or start, upper or end


db.add_command(log, "history")


@db.command()
@click.argument("revision", default="head")
@bind_option
def edit(revision: str, binds: tuple[str, ...]) -> None:
    """Open REVISION's file in the editor ($EDITOR; default: the head)."""
    extension = _extension()
    selected = _check_binds(binds)
    if revision in {"head", "heads"}:
        scripts = extension.heads(selected)
        if len(scripts) != 1:
            found = ", ".join(f"{extension.bind_of(s)}: {s.revision}" for s in scripts)
            raise click.UsageError(
                f"There are {len(scripts)} heads ({found or 'no revisions yet'}): name the "
                "revision, or one bind with --bind."
            )
        script = scripts[0]
    else:
        script = extension.show(revision, selected)
    click.edit(filename=script.path)


@db.command()
@click.argument("revisions", nargs=-1)
@json_option
@bind_option
def show(revisions: tuple[str, ...], as_json: bool, binds: tuple[str, ...]) -> None:
    """Show REVISIONS in full (default: the heads)."""
    extension = _extension()
    selected = _check_binds(binds)
    scripts: list[Any] = []
    for revision in revisions or ("heads",):
        if revision in {"heads", "head"}:  # every selected bind's heads, not just one
            scripts.extend(extension.heads(selected))
        else:
            scripts.append(extension.show(revision, selected))
    if as_json:
        _output(plain=True).json(report_json.scripts_json(scripts, extension.bind_of))
        return
    _output().scripts("revisions", scripts, extension.bind_of, verbose=True)


@db.command()
@json_option
@x_option
@bind_option
def check(as_json: bool, x_arguments: tuple[str, ...], binds: tuple[str, ...]) -> None:
    """Exit 1 if any bind's models differ from its database."""
    extension = _extension()
    selected = _check_binds(binds)
    # Comparing a database that is behind its scripts would report pending migrations
    # as differences: say so instead, as revision does.
    for status in extension.status(selected):
        if status.error is not None:
            raise status.error
        if status.pending:
            raise NotUpToDateError(
                f"Bind {status.bind!r} is at {', '.join(status.current) or 'base'}, not at its "
                f"heads ({', '.join(sorted(status.heads)) or 'base'}), so its models cannot be "
                "compared with its database.",
                bind=status.bind,
                hint=("Run ", Command("upgrade", "--bind", status.bind), " first."),
            )
    compared = [b for b in extension.registry.select(selected) if b.has_models]
    given = click.get_current_context().find_root().meta.get(_X_ARGUMENTS, ())
    x_list = [*given, *x_arguments] or None
    diffs = {b.name: extension.compare_metadata(b.name, x_arguments=x_list) for b in compared}
    unmodelled = {
        b.name: "not compared with its database: it has no models"
        for b in extension.registry.select(selected)
        if not b.has_models
    }
    output = _output(plain=as_json)
    if as_json:
        output.json(report_json.diffs_json(diffs, unmodelled))
    else:
        output.diffs(diffs, unmodelled)
        # Flask-Alembic 3's words, on stdout, for scripts that look for them.
        output.line("Changes detected." if any(diffs.values()) else "No changes detected.")
    if any(diffs.values()):
        revision = Command("revision", '"..."').render(output.group)
        output.status(f"Models and databases differ: run {revision}.")
        raise click.exceptions.Exit(1)


@db.command()
@click.argument("revisions", nargs=-1)
@click.option(
    "--pending",
    is_flag=True,
    help="The revisions upgrade would run on each bind (the default; reads the databases).",
)
@click.option("--all", "every", is_flag=True, help="Every revision of each bind.")
@click.option(
    "--strict", is_flag=True, help="Exit 1 if any error or warning finding is not accepted."
)
@click.option("--tag", help="A tag passed to the revisions, as upgrade passes it.")
@json_option
@x_option
@bind_option
def lint(
    revisions: tuple[str, ...],
    pending: bool,
    every: bool,
    strict: bool,
    tag: str | None,
    as_json: bool,
    x_arguments: tuple[str, ...],
    binds: tuple[str, ...],
) -> None:
    """Find unsafe migrations before they run (default: the pending revisions).

    Each revision runs offline for its bind's dialect, and what it does is checked
    against the lint rules.

    \b
    Examples:
      flask db lint
      flask db lint --all --strict
      flask db lint --bind analytics ab12
      flask db lint --strict migrations/3c1f0a9d2b7e_add_email.py
    """
    given = [name for name, on in (("--pending", pending), ("--all", every)) if on]
    if len(given) > 1:
        raise click.UsageError("--pending and --all are two choices: give one.")
    if given and revisions:
        raise click.UsageError(
            f"{given[0]} chooses the revisions, and so do REVISIONS: give one or the other."
        )
    extension = _extension()
    given = click.get_current_context().find_root().meta.get(_X_ARGUMENTS, ())
    report = extension.lint(
        *revisions,
        bind=_check_binds(binds),
        all=every,
        tag=tag,
        x_arguments=[*given, *x_arguments] or None,
    )
    output = _output(plain=as_json)
    if as_json:
        output.json(report_json.lint_json(report))
    else:
        if revisions:
            empty = "No revisions to lint."
        elif every:
            empty = "No revisions to lint: there are none yet."
        else:
            empty = "Nothing to lint: no revision is pending."
        output.lint(report, empty=empty)
    unaccepted = report.open()
    if strict and unaccepted:
        output.status(
            f"--strict: {len(unaccepted)} error or warning finding"
            f"{'s are' if len(unaccepted) != 1 else ' is'} not accepted: fix "
            f"{'them' if len(unaccepted) != 1 else 'it'}, or accept with lint_allow "
            '= {"rule": "reason"} in the revision file.'
        )
        raise click.exceptions.Exit(1)


@db.command()
@click.option(
    "--plan", "plan_only", is_flag=True, help="Show what adopting would do; change nothing."
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, path_type=Path),
    help="The old migrations folder or alembic.ini (default: where the old tool looks).",
)
@json_option
def adopt(plan_only: bool, source: Path | None, as_json: bool) -> None:
    """Adopt a project from Flask-Migrate, Flask-Alembic 3 or Alembic (runs no migration)."""
    adoption = _extension().adopt(source, plan=plan_only)
    output = _output(plain=as_json)
    if as_json:
        output.json(report_json.adoption_json(adoption, output.group))
    else:
        output.adoption(adoption)
    if adoption.after is not None:
        _raise_first_error(list(adoption.after))
        # With the settings adopt prints, a version table that disagrees with its database
        # is no warning: the settings are wrong (most often the version table), so say so.
        mismatch = next(
            (s.error for s in adoption.after if isinstance(s.error, VersionTableMismatchError)),
            None,
        )
        if mismatch is not None:
            raise mismatch
