"""Time Flask-Alembic against plain Alembic and a bare Flask floor, in one run.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/run.py                 # every scenario that can run here
    python benchmarks/run.py --only 1 3      # some of them
    python benchmarks/run.py --runs 9        # more runs per command (default 7; x3 for 1, 2, 5)

Each scenario writes its own revision history into a temporary folder, then runs the
commands being compared alternately, several times each, as real processes, and prints
the median wall time of each (and, for information, the median CPU time) and the ratio
against the target. Scenario 4 needs a
PostgreSQL server: set ``FLASK_ALEMBIC_TEST_POSTGRESQL_URL`` (it creates and drops four
databases). The exit status is 1 if a scenario misses its target.
"""

from __future__ import annotations

import argparse
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


@dataclass
class Scenario:
    number: int
    title: str
    target: float
    run: Callable[[Path, int], tuple[Timings, str, str]]
    #: Half-second commands: three times the runs (to tame noise), and instruction
    #: counts with ``--instructions``.
    quick: bool = False


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
        help="also count instructions with valgrind (scenarios 1, 2 and 5): exact where "
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
            COUNT_INSTRUCTIONS = args.instructions and scenario.quick
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
                print(f"   info: {name}: {medians[ours] / value:.3f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
