"""The ``flask db`` command group.

Each command parses its options, makes one call to the extension and one to the
renderer. Errors become messages and exit codes here, and only here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import TYPE_CHECKING
from typing import TypeVar

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import FlaskAlembicError
from .report import Output

if TYPE_CHECKING:
    from .extension import Alembic

__all__ = ["db"]

F = TypeVar("F", bound=Callable[..., Any])


class _DbGroup(AppGroup):
    """Turns Flask-Alembic and database errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlaskAlembicError as exc:
            _fail(ctx, str(exc), 2 if exc.usage_error else 1)
        except Exception as exc:
            from alembic.util import CommandError
            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(exc, CommandError | SQLAlchemyError) or _want_traceback(ctx):
                raise
            _fail(ctx, str(exc), 1)


def _want_traceback(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.meta.get("flask_alembic.traceback")) or current_app.debug


def _fail(ctx: click.Context, message: str, code: int) -> None:
    message = " ".join(message.split())
    try:
        extension = _extension()
        for bind in extension._state().registry or ():
            from .registry import scrub

            message = scrub(message, bind.secrets)
    except Exception:
        pass
    Output().error(message)
    ctx.exit(code)


def _set_traceback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["flask_alembic.traceback"] = True


@click.group("db", cls=_DbGroup)
@click.option(
    "--traceback",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_traceback,
    help="Show the full traceback of an unexpected error.",
)
def db() -> None:
    """Manage database migrations with Alembic."""


def _extension() -> Alembic:
    return current_app.extensions["alembic"]  # type: ignore[no-any-return]


def bind_option(f: F) -> F:
    return click.option(
        "--bind",
        "binds",
        multiple=True,
        metavar="NAME",
        help="Only this bind (database); repeat for several. Default: every bind.",
    )(f)


def _check_binds(binds: tuple[str, ...]) -> list[str] | None:
    """The binds named with --bind (``None`` for all); unknown names are usage errors."""
    if not binds:
        return None
    _extension().registry.select(binds)
    return list(binds)


@db.command()
def mkdir() -> None:
    """Create the migrations directory if it does not exist."""
    path = _extension().mkdir()
    Output().status(f"Migrations directory: {path}")


@db.command()
@click.argument("message")
@click.option("--empty", is_flag=True, help="Write an empty revision, without autogenerating.")
@click.option("--branch", help="Deprecated alias of --bind for a single bind.", hidden=True)
@click.option("--parent", help="Build on this revision instead of the bind's head.")
@click.option("--splice", is_flag=True, help="Allow a parent that is not a head (new branch).")
@click.option("--depend", multiple=True, help="A revision this one depends on (repeatable).")
@click.option("--label", multiple=True, help="A branch label for the new revision (repeatable).")
@click.option("--path", type=click.Path(), help="Write the file in this version location.")
@click.option("--rev-id", help="Use this revision id instead of a random one.")
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
    binds: tuple[str, ...],
) -> None:
    """Write a revision for each bind whose models changed (autogenerate)."""
    extension = _extension()
    selected = _check_binds(binds + ((branch,) if branch else ()))
    scripts = extension.revision(
        message,
        empty=empty,
        parent=parent,
        splice=splice,
        depend=list(depend) or None,
        label=list(label) or None,
        path=path,
        rev_id=rev_id,
        bind=selected,
    )
    output = Output()
    if not scripts:
        output.status(
            "No changes detected; no revision written. Use --empty for an empty revision."
        )
        return
    output.written(scripts, extension.bind_of)


def _migrate_command(direction: str) -> Callable[..., None]:
    def command(
        target: str,
        sql: bool,
        tag: str | None,
        plan_only: bool,
        binds: tuple[str, ...],
        with_dependencies: bool = False,
        purge: bool = False,
    ) -> None:
        extension = _extension()
        selected = _check_binds(binds)
        output = Output()
        if sql:
            method = getattr(extension, direction)
            kwargs: dict[str, Any] = {"sql": True, "tag": tag}
            if direction == "stamp":
                kwargs["purge"] = purge
            output.sql(method(target, selected, **kwargs))
            return
        plan = extension.plan(
            direction,  # type: ignore[arg-type]
            target,
            selected,
            with_dependencies=with_dependencies,
            purge=purge,
        )
        if plan_only:
            output.plan(plan)
            return
        if not plan.steps:
            output.result_empty(plan)
            return
        output.plan(plan, stream="stderr")
        from .errors import MigrationFailedError

        try:
            with output.progress(plan) as on_event:
                result = extension.run_plan(plan, on_event=on_event, purge=purge)
        except MigrationFailedError as exc:
            if exc.result is not None:
                output.result(exc.result)  # type: ignore[arg-type]
            raise
        output.result(result)

    return command


def _migration_options(direction: str, default: str) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.argument("target", default=default)(f)
        f = click.option(
            "--sql", is_flag=True, help="Print the SQL instead of running it (offline)."
        )(f)
        f = click.option("--tag", help="A tag passed to the migration environment.")(f)
        if direction != "stamp":
            f = click.option(
                "--plan", "plan_only", is_flag=True, help="Show the ordered steps and run nothing."
            )(f)
        return bind_option(f)

    return decorate


@db.command()
@_migration_options("upgrade", "heads")
@click.option(
    "--with-dependencies",
    is_flag=True,
    help="Also upgrade other binds as far as this upgrade depends on them.",
)
def upgrade(
    target: str,
    sql: bool,
    tag: str | None,
    plan_only: bool,
    binds: tuple[str, ...],
    with_dependencies: bool,
) -> None:
    """Upgrade the databases to TARGET (default: every bind to its heads)."""
    _migrate_command("upgrade")(target, sql, tag, plan_only, binds, with_dependencies)


@db.command()
@_migration_options("downgrade", "-1")
def downgrade(
    target: str, sql: bool, tag: str | None, plan_only: bool, binds: tuple[str, ...]
) -> None:
    """Downgrade the databases to TARGET (default: one step back; name a bind)."""
    _migrate_command("downgrade")(target, sql, tag, plan_only, binds)


@db.command()
@_migration_options("stamp", "heads")
@click.option("--purge", is_flag=True, help="Empty the version table before stamping.")
def stamp(target: str, sql: bool, tag: str | None, binds: tuple[str, ...], purge: bool) -> None:
    """Record TARGET in the version tables without running migrations."""
    _migrate_command("stamp")(target, sql, tag, False, binds, purge=purge)


@db.command()
@click.argument("revisions", nargs=-1)
@click.option("-m", "--message", help="The merge revision's message.")
@click.option("--label", multiple=True, help="A branch label for the merge revision.")
@click.option("--rev-id", help="Use this revision id instead of a random one.")
@bind_option
def merge(
    revisions: tuple[str, ...],
    message: str | None,
    label: tuple[str, ...],
    rev_id: str | None,
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
    Output().written(scripts, extension.bind_of)


@db.command()
@click.option("--check-heads", is_flag=True, help="Exit 1 unless every bind is at its heads.")
@click.option("-v", "--verbose", is_flag=True, help="Show the database and version table.")
@bind_option
def current(check_heads: bool, verbose: bool, binds: tuple[str, ...]) -> None:
    """Show the revision each database is at."""
    statuses = _extension().status(_check_binds(binds))
    Output().current(statuses, verbose=verbose)
    if check_heads and not all(s.up_to_date for s in statuses):
        behind = ", ".join(s.bind for s in statuses if not s.up_to_date)
        raise click.exceptions.Exit(_exit_with(f"Not at heads: {behind}. Run 'flask db upgrade'."))


def _exit_with(message: str) -> int:
    Output().status(message)
    return 1


@db.command()
@click.option("-v", "--verbose", is_flag=True, help="Show each revision's file.")
@bind_option
def heads(verbose: bool, binds: tuple[str, ...]) -> None:
    """Show the latest revision of each bind."""
    extension = _extension()
    Output().scripts(
        "heads", extension.heads(_check_binds(binds)), extension.bind_of, verbose=verbose
    )


@db.command()
@click.option("-v", "--verbose", is_flag=True, help="Show each revision's file.")
@bind_option
def branches(verbose: bool, binds: tuple[str, ...]) -> None:
    """Show the revisions where a history branches."""
    extension = _extension()
    Output().scripts(
        "branch points",
        extension.branches(_check_binds(binds)),
        extension.bind_of,
        verbose=verbose,
        empty="No branch points.",
    )


@db.command("log")
@click.option("--start", default="base", help="The oldest revision to show.")
@click.option("--end", default="heads", help="The newest revision to show.")
@click.option("-v", "--verbose", is_flag=True, help="Show each revision in full.")
@bind_option
def log(start: str, end: str, verbose: bool, binds: tuple[str, ...]) -> None:
    """Show the revisions, newest first."""
    extension = _extension()
    scripts = extension.log(start, end, _check_binds(binds))
    Output().scripts(
        "history", scripts, extension.bind_of, verbose=verbose, empty="No revisions yet."
    )


db.add_command(log, "history")


@db.command()
@click.argument("revisions", nargs=-1, required=True)
@bind_option
def show(revisions: tuple[str, ...], binds: tuple[str, ...]) -> None:
    """Show REVISIONS in full."""
    extension = _extension()
    scripts = [extension.show(revision, _check_binds(binds)) for revision in revisions]
    Output().scripts("revisions", scripts, extension.bind_of, verbose=True)


@db.command()
@bind_option
def check(binds: tuple[str, ...]) -> None:
    """Exit 1 if any bind's models differ from its database."""
    extension = _extension()
    selected = _check_binds(binds)
    diffs = {
        b.name: extension.compare_metadata(b.name) for b in extension.registry.select(selected)
    }
    Output().diffs(diffs)
    if any(diffs.values()):
        raise click.exceptions.Exit(
            _exit_with("Models and databases differ: run 'flask db revision \"...\"'.")
        )
