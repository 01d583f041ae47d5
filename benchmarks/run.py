"""Time Flask-Alembic against plain Alembic and a bare Flask floor, in one run.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/run.py                 # every scenario that can run here
    python benchmarks/run.py --only 1 3      # some of them
    python benchmarks/run.py --runs 9        # more runs per command (default 7; x3 for 1, 2, 5)
    python benchmarks/run.py --only 6 7 8 9  # lint against upgrade --sql

Each scenario writes its own revision history into a temporary folder, then runs the
commands being compared alternately, several times each, as real processes, and prints
the median wall time of each (and, for information, the median CPU time) and the ratio
against the target. Scenarios 4, 8 and 9 need a
PostgreSQL server: set ``FLASK_ALEMBIC_TEST_POSTGRESQL_URL`` (4 creates and drops four
databases, 8 and 9 one each). Scenarios 6 to 9 need the ``lint`` extra (sqlglot). The
exit status is 1 if a scenario misses its target.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

PYTHON = sys.executable

REVISION = '''"""{message}

Revision ID: {rev}
"""

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
    pass
'''

OUR_APP = """
import json, os
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    urls = json.loads(os.environ["BENCH_URLS"])
    engines = {name: sa.create_engine(url) for name, url in urls.items()}
    Alembic(app, engines=engines, metadatas={name: sa.MetaData() for name in urls})
    return app
"""

# The floor: an app of the same shape, without Flask-Alembic, whose command reads the
# version table of each database with one SELECT.
FLOOR_APP = """
import json, os
import click
import sqlalchemy as sa
from flask import Flask

def create_app():
    app = Flask(__name__)
    urls = json.loads(os.environ["BENCH_URLS"])
    engines = {name: sa.create_engine(url) for name, url in urls.items()}

    @app.cli.command("floor")
    def floor():
        for name, engine in engines.items():
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            click.echo(f"{name}: {[r[0] for r in rows]}")

    return app
"""

ENV_PY = """
import os
from alembic import context
from sqlalchemy import create_engine

config = context.config
engine = create_engine(os.environ["BENCH_URL"])
if os.environ.get("BENCH_SQLITE_BEGIN") == "1":
    # SQLAlchemy's documented recipe for real SQLite transactions (DDL included).
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def no_driver_begin(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin(conn):
        conn.exec_driver_sql("BEGIN")
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=None,
        transaction_per_migration=os.environ.get("BENCH_PER_MIGRATION") == "1",
        transactional_ddl=os.environ.get("BENCH_TRANSACTIONAL_DDL") == "1" or None,
    )
    with context.begin_transaction():
        context.run_migrations()
"""

ALEMBIC_INI = """
[alembic]
script_location = {script_location}
version_locations = {locations}
path_separator = newline
"""

# Scenarios 6-9: realistic revisions, ten kinds in turn, each group of ten working on
# tables of its own. Together they add and drop columns and indexes, create, rename and
# drop tables, change rows with op.execute (one statement or several), and accept some
# findings with lint_allow, so that both the operations and the SQL parser are exercised.
LINT_REVISION = '''"""{message}

Revision ID: {rev}
"""

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
{allow}

def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

#: (message, upgrade, downgrade, lint_allow) of each kind; ``{t}`` is the group's table.
LINT_KINDS: tuple[tuple[str, str, str, dict[str, str] | None], ...] = (
    (
        "create {t}",
        """
        op.create_table(
            "{t}",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(80), nullable=False),
            sa.Column("created_at", sa.DateTime, server_default=sa.func.current_timestamp()),
        )
        """,
        'op.drop_table("{t}")',
        None,
    ),
    (
        "{t}.email",
        'op.add_column("{t}", sa.Column("email", sa.String(120), nullable=True))',
        'op.drop_column("{t}", "email")',
        {"drop-column": "only the downgrade drops it"},  # a marker that no longer fires
    ),
    (
        "index {t}.email",
        'op.create_index("ix_{t}_email", "{t}", ["email"], postgresql_concurrently=True)',
        'op.drop_index("ix_{t}_email", table_name="{t}")',
        None,
    ),
    (
        "backfill {t}.email",
        """
        op.execute(
            "UPDATE {t} SET email = lower(name) || '@example.com' "
            "WHERE email IS NULL AND name NOT LIKE '%@%'"
        )
        """,
        "pass",
        None,
    ),
    (
        "{t}.status",
        """
        op.add_column(
            "{t}",
            sa.Column("status", sa.String(20), nullable=False, server_default="new"),
        )
        op.create_index("ix_{t}_status", "{t}", ["status"])
        """,
        """
        op.drop_index("ix_{t}_status", table_name="{t}")
        op.drop_column("{t}", "status")
        """,
        {"create-index-blocking": "the table is small"},
    ),
    (
        "{t}_log",
        """
        op.create_table(
            "{t}_log",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("{t}_id", sa.Integer, sa.ForeignKey("{t}.id"), nullable=False),
            sa.Column("message", sa.Text),
            sa.Column("at", sa.DateTime, server_default=sa.text("CURRENT_TIMESTAMP")),
        )
        op.create_index("ix_{t}_log_{t}_id", "{t}_log", ["{t}_id"])
        """,
        """
        op.drop_index("ix_{t}_log_{t}_id", table_name="{t}_log")
        op.drop_table("{t}_log")
        """,
        None,
    ),
    (
        "activate old {t}",
        """
        op.execute("UPDATE {t} SET status = 'active' WHERE created_at < '2020-01-01'")
        op.execute(
            "INSERT INTO {t}_log ({t}_id, message) "
            "SELECT id, 'activated' FROM {t} WHERE status = 'active'; "
            "DELETE FROM {t}_log WHERE message IS NULL"
        )
        op.execute("ANALYZE {t}")
        """,
        "op.execute(\"UPDATE {t} SET status = 'new' WHERE status = 'active'\")",
        None,
    ),
    (
        "{t}.score",
        """
        op.add_column("{t}", sa.Column("score", sa.Integer, nullable=True))
        op.execute("UPDATE {t} SET score = 0 WHERE score IS NULL")
        """,
        'op.drop_column("{t}", "score")',
        {"data-change-in-schema-migration": "a small table: filled in the same step"},
    ),
    (
        "drop {t}.email",
        """
        op.drop_index("ix_{t}_email", table_name="{t}")
        op.drop_column("{t}", "email")
        """,
        """
        op.add_column("{t}", sa.Column("email", sa.String(120), nullable=True))
        op.create_index("ix_{t}_email", "{t}", ["email"])
        """,
        {"drop-column": "unused since 2.3", "drop-index-blocking": "the table is small"},
    ),
    (
        "rename {t}_log",
        """
        op.execute("CREATE INDEX ix_{t}_name ON {t} (name)")
        op.rename_table("{t}_log", "{t}_events")
        """,
        """
        op.rename_table("{t}_events", "{t}_log")
        op.execute("DROP INDEX ix_{t}_name")
        """,
        {"rename-table": "no reader of {t}_log is left"},
    ),
)

LINT_APP = """
import json, os, time
import click
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    url = os.environ["BENCH_URL"]
    alembic = Alembic(
        app, engines={"default": sa.create_engine(url)}, metadatas={"default": sa.MetaData()}
    )

    def sql():
        return alembic.upgrade(sql=True)["default"].count("-- Running upgrade")

    def lint():
        report = alembic.lint()
        return len(report.linted)

    @app.cli.command("bench")
    @click.argument("what", nargs=-1)
    def bench(what):
        # One timed call of each name in WHAT, in this process: printed as JSON lists.
        done = {"sql": sql, "lint": lint}
        times = {}
        for name in what:
            started = time.perf_counter()
            count = done[name]()
            times.setdefault(name, []).append(time.perf_counter() - started)
            if count != 500:
                raise SystemExit(f"{name}: {count} revisions, not 500")
        click.echo(json.dumps(times))

    return app
"""


@dataclass
class Scenario:
    number: int
    title: str
    target: float
    run: Callable[[Path, int], tuple[Timings, str, str]]
    #: Half-second commands: three times the runs (to tame noise), and instruction
    #: counts with ``--instructions``.
    quick: bool = False
    #: Instruction counts with ``--instructions``, without more runs.
    counts: bool = False


def write_history(folder: Path, count: int, *, label: str | None, prefix: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    down = None
    for number in range(count):
        rev = f"{prefix}{number:06d}"
        (folder / f"{rev}_step.py").write_text(
            REVISION.format(
                message=f"step {number}",
                rev=rev,
                down=down,
                labels=(label,) if down is None and label else None,
                upgrade=textwrap.indent(body.format(n=number, prefix=prefix), "    "),
            )
        )
        down = rev


def make_project(root: Path, binds: dict[str, int], urls: dict[str, str], body: str) -> Path:
    """A Flask-Alembic project with ``binds[name]`` revisions per bind."""
    project = root / "proj"
    migrations = project / "migrations"
    migrations.mkdir(parents=True)
    template = Path(__file__).parent.parent / "migrations_template" / "script.py.mako"
    shutil.copy(template, migrations / "script.py.mako")
    for number, (name, count) in enumerate(binds.items()):
        folder = migrations if name == "default" else migrations / name
        write_history(folder, count, label=name, prefix=f"b{number}r", body=body)
    (project / "ourapp.py").write_text(OUR_APP)
    (project / "floorapp.py").write_text(FLOOR_APP)
    # Plain Alembic gets its own script location (env.py), reading the same revisions.
    plain = project / "plain"
    plain.mkdir()
    (plain / "env.py").write_text(ENV_PY)
    shutil.copy(template, plain / "script.py.mako")
    (project / "alembic.ini").write_text(
        ALEMBIC_INI.format(script_location=plain, locations=migrations)
    )
    return project


def environment(urls: dict[str, str], **extra: str) -> dict[str, str]:
    # Python's bytecode cache on, as on a real deployment (some shells turn it off).
    skip = ("FLASK_", "BENCH_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(BENCH_URLS=json.dumps(urls), NO_COLOR="1", **extra)
    return env


def timed(
    command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``command``."""
    if before is not None:
        before()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return elapsed, cpu


@dataclass
class Timings:
    """Median wall and CPU seconds per command name."""

    wall: dict[str, float]
    cpu: dict[str, float] = field(default_factory=dict)
    #: Instructions executed (``--instructions``): exact, unlike times on a shared machine.
    instructions: dict[str, int] = field(default_factory=dict)
    #: Further lines printed for information.
    notes: list[str] = field(default_factory=list)
    #: What ``wall`` holds: seconds (printed as ms), or megabytes of peak memory.
    unit: str = "s"


#: Set by ``--instructions``: also count each command's instructions once with callgrind.
COUNT_INSTRUCTIONS = False


def instructions(
    command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None] | None = None
) -> int:
    """Instructions one run of ``command`` executes, counted by valgrind's callgrind."""
    if before is not None:
        before()
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        cwd=cwd,
        env={**env, "PYTHONHASHSEED": "0"},  # the same work on every run
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise SystemExit(f"callgrind gave no count for {' '.join(command)}:\n{result.stderr}")


def compare(
    commands: dict[str, tuple[list[str], dict[str, str], Callable[[], None] | None]],
    cwd: Path,
    runs: int,
) -> Timings:
    """Run each command ``runs`` times, interleaved, after one warm-up; return medians."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for command, env, before in commands.values():
        timed(command, cwd, env, before)  # warm-up: page cache, __pycache__
    order = list(commands.items())
    for _ in range(runs):
        for name, (command, env, before) in order:
            wall, cpu = timed(command, cwd, env, before)
            walls[name].append(wall)
            cpus[name].append(cpu)
        order.reverse()  # A B, then B A: no command always runs first
    counts = {}
    if COUNT_INSTRUCTIONS:
        counts = {name: instructions(spec[0], cwd, spec[1], spec[2]) for name, spec in order}
    return Timings(
        {name: statistics.median(values) for name, values in walls.items()},
        {name: statistics.median(values) for name, values in cpus.items()},
        counts,
    )


def flask_cmd(app: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "flask", "--app", app, *args]


def alembic_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "alembic", *args]


def scenario_noop(root: Path, runs: int) -> tuple[Timings, str, str]:
    url = f"sqlite:///{root / 'one.db'}"
    urls = {"default": url}
    project = make_project(root, {"default": 2000}, urls, body="pass")
    env = environment(urls)
    subprocess.run(
        flask_cmd("ourapp", "db", "upgrade"), cwd=project, env=env, check=True, capture_output=True
    )
    timings = compare(
        {
            "flask-alembic: flask db upgrade (no-op)": (
                flask_cmd("ourapp", "db", "upgrade"),
                env,
                None,
            ),
            "floor: flask floor (one SELECT)": (flask_cmd("floorapp", "floor"), env, None),
            "plain alembic upgrade head (info)": (
                alembic_cmd("upgrade", "head"),
                {**env, "BENCH_URL": url},
                None,
            ),
        },
        project,
        runs,
    )
    return timings, "flask-alembic: flask db upgrade (no-op)", "floor: flask floor (one SELECT)"


def scenario_status(root: Path, runs: int) -> tuple[Timings, str, str]:
    urls = {name: f"sqlite:///{root / (name + '.db')}" for name in ("default", "b1", "b2", "b3")}
    project = make_project(root, dict.fromkeys(urls, 500), urls, body="pass")
    env = environment(urls)
    subprocess.run(
        flask_cmd("ourapp", "db", "upgrade"), cwd=project, env=env, check=True, capture_output=True
    )
    timings = compare(
        {
            "flask-alembic: flask db status (4 binds)": (
                flask_cmd("ourapp", "db", "status"),
                env,
                None,
            ),
            "floor: flask floor (4 SELECTs)": (flask_cmd("floorapp", "floor"), env, None),
        },
        project,
        runs,
    )
    return timings, "flask-alembic: flask db status (4 binds)", "floor: flask floor (4 SELECTs)"


def scenario_full(root: Path, runs: int) -> tuple[Timings, str, str]:
    db = root / "full.db"
    url = f"sqlite:///{db}"
    urls = {"default": url}
    body = 'op.create_table("t_{prefix}{n}", sa.Column("id", sa.Integer, primary_key=True))'
    project = make_project(root, {"default": 500}, urls, body=body)
    env = environment(urls)

    def fresh() -> None:
        db.unlink(missing_ok=True)

    alembic_env = {**env, "BENCH_URL": url}
    timings = compare(
        {
            "flask-alembic: flask db upgrade (500 steps)": (
                flask_cmd("ourapp", "db", "upgrade"),
                env,
                fresh,
            ),
            "alembic upgrade head, transaction per migration": (
                alembic_cmd("upgrade", "head"),
                {**alembic_env, "BENCH_PER_MIGRATION": "1"},
                fresh,
            ),
            "alembic upgrade head, one transaction (info)": (
                alembic_cmd("upgrade", "head"),
                alembic_env,
                fresh,
            ),
            "alembic upgrade head, per migration, env.py with BEGIN recipe (info)": (
                alembic_cmd("upgrade", "head"),
                {
                    **alembic_env,
                    "BENCH_PER_MIGRATION": "1",
                    "BENCH_SQLITE_BEGIN": "1",
                    "BENCH_TRANSACTIONAL_DDL": "1",
                },
                fresh,
            ),
        },
        project,
        runs,
    )
    return (
        timings,
        "flask-alembic: flask db upgrade (500 steps)",
        "alembic upgrade head, transaction per migration",
    )


def scenario_parallel(root: Path, runs: int) -> tuple[Timings, str, str]:
    """Wall time of the migration run itself (from the JSON report), 4 binds at once.

    The whole command also pays for starting Python, Flask and Alembic (printed for
    information); the target is about the migrations: 4 x 1 s of work in <= 1.5 s.
    """
    import sqlalchemy as sa

    server = os.environ.get("FLASK_ALEMBIC_TEST_POSTGRESQL_URL")
    if not server:
        raise LookupError("set FLASK_ALEMBIC_TEST_POSTGRESQL_URL to run scenario 4")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"fa_bench_{uuid.uuid4().hex[:8]}_{i}" for i in range(4)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        base = sa.make_url(server)
        urls = {
            bind: base.set(database=name).render_as_string(hide_password=False)
            for bind, name in zip(("default", "b1", "b2", "b3"), names, strict=True)
        }
        project = make_project(
            root, dict.fromkeys(urls, 1), urls, body='op.execute("SELECT pg_sleep(1)")'
        )
        env = environment(urls)

        def reset() -> None:
            for url in urls.values():
                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
                engine.dispose()

        samples: dict[str, list[float]] = {key: [] for key in ("par", "seq", "par_cmd", "seq_cmd")}
        for _ in range(runs + 1):  # the first round warms up and is dropped
            for key, extra in (("par", []), ("seq", ["--parallel", "1"])):
                reset()
                started = time.perf_counter()
                out = subprocess.run(
                    flask_cmd("ourapp", "db", "upgrade", "--json", *extra),
                    cwd=project,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                samples[key + "_cmd"].append(time.perf_counter() - started)
                samples[key].append(json.loads(out.stdout)["elapsed"])
        medians = {
            "migration run, 4 binds in parallel": statistics.median(samples["par"][1:]),
            "migration run, one after another (info)": statistics.median(samples["seq"][1:]),
            "whole command, parallel (info)": statistics.median(samples["par_cmd"][1:]),
            "whole command, one after another (info)": statistics.median(samples["seq_cmd"][1:]),
        }
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    medians["budget: 1.0 s of work per bind"] = 1.0
    return Timings(medians), "migration run, 4 binds in parallel", "budget: 1.0 s of work per bind"


def scenario_help(root: Path, runs: int) -> tuple[Timings, str, str]:
    urls = {"default": f"sqlite:///{root / 'help.db'}"}
    project = make_project(root, {"default": 1}, urls, body="pass")
    env = environment(urls)
    timings = compare(
        {
            "flask --app ourapp db --help": (flask_cmd("ourapp", "db", "--help"), env, None),
            "flask --app ourapp --help": (flask_cmd("ourapp", "--help"), env, None),
        },
        project,
        runs,
    )
    return timings, "flask --app ourapp db --help", "flask --app ourapp --help"


def write_lint_history(folder: Path, count: int) -> None:
    """``count`` revisions of the kinds of ``LINT_KINDS``, in turn, in one line."""
    folder.mkdir(parents=True, exist_ok=True)
    down = None
    for number in range(count):
        group, kind = divmod(number, len(LINT_KINDS))
        message, upgrade, downgrade, allow = LINT_KINDS[kind]
        table = f"t{group:03d}"

        def body(text: str, table: str = table) -> str:
            return textwrap.indent(textwrap.dedent(text).strip().format(t=table), "    ")

        allowed = ""
        if allow is not None:
            reasons = {rule: reason.format(t=table) for rule, reason in allow.items()}
            allowed = f"\nlint_allow = {reasons!r}\n"
        rev = f"l{number:06d}"
        (folder / f"{rev}_step.py").write_text(
            LINT_REVISION.format(
                message=message.format(t=table),
                rev=rev,
                down=down,
                allow=allowed,
                upgrade=body(upgrade),
                downgrade=body(downgrade),
            )
        )
        down = rev


def scenario_lint(root: Path, runs: int, *, server: bool, warm: bool) -> tuple[Timings, str, str]:
    """``lint`` of 500 pending revisions against ``upgrade --sql`` of the same ones.

    Both through the Python API (``alembic.lint()``, ``alembic.upgrade(sql=True)``), timed
    around the call itself. Cold: each call in a new process, so each imports the 500
    revision files (and ``lint`` the SQL parser); the whole command's time is printed for
    information. Warm: every call in one process, after one call of each, so the revision
    files are imported already.
    """
    import sqlalchemy as sa

    if importlib.util.find_spec("sqlglot") is None:
        raise LookupError("install the lint extra (sqlglot) to run this scenario")
    admin = None
    database = None
    if server:
        server_url = os.environ.get("FLASK_ALEMBIC_TEST_POSTGRESQL_URL")
        if not server_url:
            raise LookupError("set FLASK_ALEMBIC_TEST_POSTGRESQL_URL to run this scenario")
        admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        database = f"fa_bench_{uuid.uuid4().hex[:8]}_lint"
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {database}"))
        url = sa.make_url(server_url).set(database=database).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{root / 'lint.db'}"
    try:
        project = root / "proj"
        migrations = project / "migrations"
        write_lint_history(migrations, 500)
        template = Path(__file__).parent.parent / "migrations_template" / "script.py.mako"
        shutil.copy(template, migrations / "script.py.mako")
        (project / "lintapp.py").write_text(LINT_APP)
        env = environment({}, BENCH_URL=url)

        def bench(*what: str) -> tuple[dict[str, list[float]], float]:
            started = time.perf_counter()
            out = subprocess.run(
                flask_cmd("lintapp", "bench", *what),
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - started
            if out.returncode != 0:
                raise SystemExit(f"bench {' '.join(what)} failed:\n{out.stdout}\n{out.stderr}")
            return json.loads(out.stdout.splitlines()[-1]), elapsed

        samples: dict[str, list[float]] = {"lint": [], "sql": [], "lint_cmd": [], "sql_cmd": []}
        if warm:
            order = ["sql", "lint"]
            what = list(order)  # one call of each first: dropped
            for _ in range(runs):
                what += order
                order.reverse()
            times, _ = bench(*what)
            samples["lint"], samples["sql"] = times["lint"][1:], times["sql"][1:]
        else:
            order = ["sql", "lint"]
            for round_ in range(runs + 1):  # the first round warms up and is dropped
                for name in order:
                    times, elapsed = bench(name)
                    if round_:
                        samples[name] += times[name]
                        samples[name + "_cmd"].append(elapsed)
                order.reverse()
        how = "warm, one process" if warm else "cold, a new process each"
        lint_name = f"alembic.lint(), 500 pending revisions ({how})"
        sql_name = f"alembic.upgrade(sql=True), the same 500 revisions ({how})"
        medians = {
            lint_name: statistics.median(samples["lint"]),
            sql_name: statistics.median(samples["sql"]),
        }
        best_lint, best_sql = min(samples["lint"]), min(samples["sql"])
        notes = [
            f"best of {runs}: lint {best_lint * 1000:.1f} ms, upgrade --sql "
            f"{best_sql * 1000:.1f} ms, ratio {best_lint / best_sql:.3f}"
        ]
        if not warm:
            lint_cmd = statistics.median(samples["lint_cmd"])
            sql_cmd = statistics.median(samples["sql_cmd"])
            notes.append(
                f"whole command: lint {lint_cmd * 1000:.1f} ms, upgrade --sql "
                f"{sql_cmd * 1000:.1f} ms, ratio {lint_cmd / sql_cmd:.3f}"
            )
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            admin.dispose()
    return Timings(medians, notes=notes), lint_name, sql_name


# Scenarios 10 to 12 (issue 18): costs that must not grow with the history.

#: The app of scenario 10 with the revision cache checking every file on every command.
FILES_APP = OUR_APP.replace(
    "    Alembic(app,",
    '    app.config["ALEMBIC_REVISION_CACHE_CHECK"] = "files"\n    Alembic(app,',
)


@dataclass
class GrowthRow:
    """One line of the growth table: a command of this package against the floor and,
    where it applies, against plain Alembic doing the same, measured in one run."""

    work: str
    ours: float  # median wall seconds
    ours_mb: float  # median peak resident memory
    floor: float
    floor_mb: float
    alembic: float | None = None
    alembic_mb: float | None = None
    #: Instructions of this package and of the floor (``--instructions``).
    ours_instructions: int | None = None
    floor_instructions: int | None = None


#: Filled by scenarios 10 and 12, printed at the end.
GROWTH: list[GrowthRow] = []


def _add_growth_rows(
    size: str,
    walls: dict[str, float],
    peaks: dict[str, float],
    counts: dict[str, int],
    *,
    alembic: tuple[float, float] | None = None,
) -> None:
    """The no-op upgrade's and the status's rows at one ``size`` (Alembic: the upgrade's)."""
    for name, work in (("upgrade", "no-op upgrade"), ("status", "up-to-date status")):
        theirs = alembic if name == "upgrade" else None
        GROWTH.append(
            GrowthRow(
                f"{work}, {size}",
                walls[name],
                peaks[name],
                walls["floor"],
                peaks["floor"],
                None if theirs is None else theirs[0],
                None if theirs is None else theirs[1],
                counts.get(name),
                counts.get("floor"),
            )
        )


def print_growth_table() -> None:
    if not GROWTH:
        return
    print("\n== Growth table (medians; ratios against the floor and plain Alembic, same run)")
    print(
        f"   {'work':<44} {'ms':>8} {'vs floor':>8} {'instr.':>7} {'MB':>6} {'floor MB':>8}"
        f" {'Alembic ms':>10} {'MB':>6} {'time vs A':>9} {'MB vs A':>7}"
    )
    for row in GROWTH:
        instructions = (
            f"{row.ours_instructions / row.floor_instructions:7.3f}"
            if row.ours_instructions and row.floor_instructions
            else f"{'-':>7}"
        )
        alembic = f"{'-':>10} {'-':>6} {'-':>9} {'-':>7}"
        if row.alembic is not None and row.alembic_mb is not None:
            alembic = (
                f"{row.alembic * 1000:10.1f} {row.alembic_mb:6.1f} "
                f"{row.ours / row.alembic:9.3f} {row.ours_mb / row.alembic_mb:7.3f}"
            )
        print(
            f"   {row.work:<44} {row.ours * 1000:8.1f} {row.ours / row.floor:8.3f} "
            f"{instructions} {row.ours_mb:6.1f} {row.floor_mb:8.1f} {alembic}"
        )


def timed_peak(
    command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None] | None = None
) -> tuple[float, float, float]:
    """Wall time, peak resident memory (MB, the child's ``ru_maxrss``) and CPU time (user
    + system) of one run."""
    if before is not None:
        before()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if status != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{err.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


#: The median CPU time of each command of the last :func:`compare_peak`.
LAST_CPU: dict[str, float] = {}


def compare_peak(
    commands: dict[str, tuple[list[str], dict[str, str], Callable[[], None] | None]],
    cwd: Path,
    runs: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median peak memory of each command, interleaved as compare();
    the median CPU times go to :data:`LAST_CPU`."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for command, env, before in commands.values():
        timed_peak(command, cwd, env, before)  # warm-up
    order = list(commands.items())
    for _ in range(runs):
        for name, (command, env, before) in order:
            wall, peak, cpu = timed_peak(command, cwd, env, before)
            walls[name].append(wall)
            peaks[name].append(peak)
            cpus[name].append(cpu)
        order.reverse()
    LAST_CPU.clear()
    LAST_CPU.update({name: statistics.median(v) for name, v in cpus.items()})
    return (
        {name: statistics.median(v) for name, v in walls.items()},
        {name: statistics.median(v) for name, v in peaks.items()},
    )


def _stamped(root: Path, binds: dict[str, int]) -> tuple[Path, dict[str, str]]:
    """A project with ``binds[name]`` empty revisions per bind, stamped at its heads (the
    first command also builds the revision cache)."""
    urls = {name: f"sqlite:///{root / (name + '.db')}" for name in binds}
    project = make_project(root, binds, urls, body="pass")
    env = environment(urls)
    subprocess.run(
        flask_cmd("ourapp", "db", "stamp", "heads"),
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    # As on a server, where the files are older than the cache: a file changed less than
    # 2 seconds before the cache was written is checked again until a later run rewrites
    # the cache, which would otherwise happen in the middle of the measurements.
    time.sleep(2.1)
    subprocess.run(
        flask_cmd("ourapp", "db", "status"), cwd=project, env=env, check=True, capture_output=True
    )
    return project, urls


def scenario_growth(root: Path, runs: int) -> tuple[Timings, str, str]:
    """No-op upgrade and up-to-date status at 500, 5,000 and 20,000 revisions (one bind),
    against the floor and plain Alembic's no-op ``upgrade head``; the ratio judged is the
    no-op upgrade's against the floor at 20,000."""
    notes = []
    medians: dict[str, float] = {}
    counts: dict[str, int] = {}
    for count in (500, 5000, 20000):
        project, urls = _stamped(root / f"h{count}", {"default": count})
        env = environment(urls)
        (project / "filesapp.py").write_text(FILES_APP)
        commands = {
            "upgrade": (flask_cmd("ourapp", "db", "upgrade"), env, None),
            "status": (flask_cmd("ourapp", "db", "status"), env, None),
            "upgrade (files)": (flask_cmd("filesapp", "db", "upgrade"), env, None),
            "floor": (flask_cmd("floorapp", "floor"), env, None),
            "alembic": (
                alembic_cmd("upgrade", "head"),
                {**env, "BENCH_URL": urls["default"]},
                None,
            ),
        }
        walls, peaks = compare_peak(commands, project, runs)
        if COUNT_INSTRUCTIONS:  # not Alembic's: it imports every file, minutes under valgrind
            counts = {
                name: instructions(commands[name][0], project, commands[name][1])
                for name in ("upgrade", "status", "floor")
            }
        floor = walls["floor"]
        _add_growth_rows(
            f"{count:,} revisions",
            walls,
            peaks,
            counts,
            alembic=(walls["alembic"], peaks["alembic"]),
        )
        notes.append(
            f"{count:>6} revisions, ALEMBIC_REVISION_CACHE_CHECK='files': upgrade "
            f"{walls['upgrade (files)'] * 1000:.1f} ms "
            f"({walls['upgrade (files)'] / floor:.3f}x, {peaks['upgrade (files)']:.1f} MB)"
        )
        if counts:
            notes.append(
                f"{count:>6} revisions, instructions vs floor: upgrade "
                f"{counts['upgrade'] / counts['floor']:.3f}, status "
                f"{counts['status'] / counts['floor']:.3f}"
            )
        medians = {
            f"flask db upgrade (no-op, {count} revisions)": walls["upgrade"],
            f"floor (one SELECT, {count} revisions)": floor,
        }
        shutil.rmtree(root / f"h{count}", ignore_errors=True)
    ours, base = list(medians)
    return Timings(medians, notes=notes), ours, base


def scenario_long_upgrade(root: Path, runs: int) -> tuple[Timings, str, str]:
    """Full upgrade of 5,000 revisions (a table each): the ratio judged is peak memory
    against plain Alembic's (transaction per migration); wall times for information."""
    db = root / "long.db"
    url = f"sqlite:///{db}"
    urls = {"default": url}
    body = 'op.create_table("t_{prefix}{n}", sa.Column("id", sa.Integer, primary_key=True))'
    project = make_project(root, {"default": 5000}, urls, body=body)
    env = environment(urls)

    def fresh() -> None:
        db.unlink(missing_ok=True)

    walls, peaks = compare_peak(
        {
            "flask db upgrade": (flask_cmd("ourapp", "db", "upgrade"), env, fresh),
            "alembic upgrade head": (
                alembic_cmd("upgrade", "head"),
                {**env, "BENCH_URL": url, "BENCH_PER_MIGRATION": "1"},
                fresh,
            ),
        },
        project,
        runs,
    )
    ours = "peak memory, flask db upgrade (5,000 steps)"
    base = "peak memory, alembic upgrade head"
    cpu = LAST_CPU
    notes = [
        f"wall: flask db upgrade {walls['flask db upgrade']:.2f} s, alembic upgrade head "
        f"{walls['alembic upgrade head']:.2f} s, ratio "
        f"{walls['flask db upgrade'] / walls['alembic upgrade head']:.3f}",
        f"CPU: flask db upgrade {cpu['flask db upgrade']:.2f} s, alembic upgrade head "
        f"{cpu['alembic upgrade head']:.2f} s, ratio "
        f"{cpu['flask db upgrade'] / cpu['alembic upgrade head']:.3f}",
    ]
    return (
        Timings(
            {ours: peaks["flask db upgrade"], base: peaks["alembic upgrade head"]},
            notes=notes,
            unit="MB",
        ),
        ours,
        base,
    )


def scenario_many_binds(root: Path, runs: int) -> tuple[Timings, str, str]:
    """status and no-op upgrade, 4 and 32 SQLite binds x 100 revisions, against the floor
    with one SELECT per bind; the ratio judged is the no-op upgrade's at 32 binds."""
    notes = []
    medians: dict[str, float] = {}
    counted: dict[str, int] = {}
    for count in (4, 32):
        names = ["default", *(f"b{i}" for i in range(1, count))]
        project, urls = _stamped(root / f"b{count}", dict.fromkeys(names, 100))
        env = environment(urls)
        walls, peaks = compare_peak(
            {
                "upgrade": (flask_cmd("ourapp", "db", "upgrade"), env, None),
                "status": (flask_cmd("ourapp", "db", "status"), env, None),
                "floor": (flask_cmd("floorapp", "floor"), env, None),
            },
            project,
            runs,
        )
        floor = walls["floor"]
        if COUNT_INSTRUCTIONS:
            counted = _count_many_binds(project, env)
            notes.extend(
                f"{count} binds, instructions: {name} {number / 1e6:.1f} M "
                f"({number / counted['floor']:.3f}x)"
                for name, number in counted.items()
            )
        _add_growth_rows(f"{count} binds x 100", walls, peaks, counted)
        medians = {
            f"flask db upgrade (no-op, {count} binds)": walls["upgrade"],
            f"floor ({count} SELECTs)": floor,
        }
    ours, base = list(medians)
    counts = {ours: counted["upgrade"], base: counted["floor"]} if counted else {}
    return Timings(medians, notes=notes, instructions=counts), ours, base


def _count_many_binds(project: Path, env: dict[str, str]) -> dict[str, int]:
    """Instructions of each command of scenario 12, counted once with callgrind; also with
    ``ALEMBIC_REVISION_CACHE_CHECK = "files"``, for information."""
    (project / "filesapp.py").write_text(FILES_APP)
    commands = {
        "upgrade": flask_cmd("ourapp", "db", "upgrade"),
        "status": flask_cmd("ourapp", "db", "status"),
        "upgrade (files)": flask_cmd("filesapp", "db", "upgrade"),
        "status (files)": flask_cmd("filesapp", "db", "status"),
        "floor": flask_cmd("floorapp", "floor"),
    }
    counted = {}
    for name, command in commands.items():
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)  # warm
        counted[name] = instructions(command, project, env)
    return counted


SCENARIOS = [
    Scenario(
        1,
        "No-op upgrade, 1 SQLite bind, 2000 revisions (vs floor)",
        1.15,
        scenario_noop,
        quick=True,
    ),
    Scenario(
        2, "status, 4 SQLite binds x 500 revisions (vs floor)", 1.2, scenario_status, quick=True
    ),
    Scenario(3, "Full upgrade, 500 revisions, 1 SQLite bind (vs Alembic)", 1.0, scenario_full),
    Scenario(4, "4 PostgreSQL binds, one 1 s migration each (wall vs 1 s)", 1.5, scenario_parallel),
    Scenario(5, "flask db --help (vs flask --help)", 1.1, scenario_help, quick=True),
    Scenario(
        6,
        "lint, 500 pending SQLite revisions, cold (vs upgrade --sql)",
        2.0,
        functools.partial(scenario_lint, server=False, warm=False),
    ),
    Scenario(
        7,
        "lint, 500 pending SQLite revisions, warm (vs upgrade --sql)",
        2.0,
        functools.partial(scenario_lint, server=False, warm=True),
    ),
    Scenario(
        8,
        "lint, 500 pending PostgreSQL revisions, cold (vs upgrade --sql)",
        2.0,
        functools.partial(scenario_lint, server=True, warm=False),
    ),
    Scenario(
        9,
        "lint, 500 pending PostgreSQL revisions, warm (vs upgrade --sql)",
        2.0,
        functools.partial(scenario_lint, server=True, warm=True),
    ),
    Scenario(
        10,
        "No-op upgrade/status at 500, 5,000, 20,000 revisions (vs floor)",
        1.1,
        scenario_growth,
        counts=True,
    ),
    Scenario(
        11, "Full upgrade, 5,000 revisions: peak memory (vs Alembic)", 1.0, scenario_long_upgrade
    ),
    Scenario(
        12,
        "status/no-op upgrade, 4 and 32 binds x 100 revisions (vs floor)",
        1.1,
        scenario_many_binds,
        counts=True,
    ),
]


def main() -> int:
    global COUNT_INSTRUCTIONS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", type=int, nargs="*", help="scenario numbers to run")
    parser.add_argument(
        "--runs",
        type=int,
        default=7,
        help="timed runs per command (x3 for the quick scenarios 1, 2 and 5)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions with valgrind (scenarios 1, 2, 5, 10 and 12): exact where "
        "times are noisy",
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH")
    missed = 0
    # Compile this project like an installed package would be, so no run pays for it.
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(Path(__file__).parent.parent / "flask_alembic")],
        check=True,
    )
    for scenario in SCENARIOS:
        if args.only and scenario.number not in args.only:
            continue
        print(
            f"\n== {scenario.number}. {scenario.title} (target <= {scenario.target}x)", flush=True
        )
        root = Path(tempfile.mkdtemp(prefix="fa-bench-"))
        try:
            COUNT_INSTRUCTIONS = args.instructions and (scenario.quick or scenario.counts)
            timings, ours, base = scenario.run(root, args.runs * (3 if scenario.quick else 1))
        except LookupError as exc:
            print(f"   skipped: {exc}")
            continue
        finally:
            shutil.rmtree(root, ignore_errors=True)
        medians = timings.wall
        for name, value in medians.items():
            cpu = timings.cpu.get(name)
            shown = f"  (cpu {cpu * 1000:7.1f} ms)" if cpu is not None else ""
            if timings.unit == "MB":
                print(f"   {value:8.1f} MB  {name}")
            else:
                print(f"   {value * 1000:8.1f} ms{shown}  {name}")
        ratio = medians[ours] / medians[base]
        verdict = "ok" if ratio <= scenario.target else "MISSED"
        missed += verdict != "ok"
        print(f"   ratio {ratio:.3f} (target {scenario.target}) {verdict}")
        if timings.cpu:
            print(f"   info: ratio of CPU times {timings.cpu[ours] / timings.cpu[base]:.3f}")
        if timings.instructions:
            for name, count in timings.instructions.items():
                print(f"   {count / 1e6:8.1f} M instructions  {name}")
            ratio_i = timings.instructions[ours] / timings.instructions[base]
            print(f"   info: ratio of instructions {ratio_i:.3f}")
        for name, value in medians.items():
            if name not in (ours, base) and "(info)" in name:
                print(f"   info: {name}: Flask-Alembic's / it: {medians[ours] / value:.3f}x")
        for note in timings.notes:
            print(f"   info: {note}")
    print_growth_table()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
