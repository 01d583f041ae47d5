"""Progress of a run: clocks that tick, a log line as each step starts, a notice at the first
signal, and a terminal left with the plan and the summary only."""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import IO

import pytest
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import URL_APP
from conftest import version_rows

from flask_alembic.executor import Event
from flask_alembic.report import Output

REVISION = '''\
"""{message}"""

import os
import time

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: scripts/render_output.py's functions: its terminal emulation draws the docs' examples.
_RENDER = runpy.run_path(
    str(Path(__file__).resolve().parent.parent / "scripts" / "render_output.py")
)
_RENDER = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "render_output.py"))


def write(
    root: Path,
    bind: str,
    rev: str,
    body: str = "pass",
    *,
    down: str | None = None,
    message: str | None = None,
) -> None:
    """A revision of ``bind`` (its first when ``down`` is None), its message ``slow REV``."""
    folder = root / "migrations" if bind == "default" else root / "migrations" / bind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{rev}_step.py").write_text(
        REVISION.format(
            message=message or f"slow {rev}",
            rev=rev,
            down=down,
            labels=None if down else (bind,),
            body=textwrap.indent(textwrap.dedent(body).strip(), "    "),
        )
    )


def slow(root: Path, name: str, seconds: float, dialect: str = "sqlite") -> str:
    """A step body: mark ``started-NAME``, create table ``t_NAME``, wait ``seconds`` (in the
    database where it can), then mark ``done-NAME``."""
    wait = {
        "postgresql": f'op.execute("SELECT pg_sleep({seconds})")',
        "mysql": f'op.execute("SELECT SLEEP({seconds})")',
    }.get(dialect, f"time.sleep({seconds})")
    marks = str(root)
    return f"""
    op.create_table("t_{name}", sa.Column("id", sa.Integer))
    open(os.path.join({marks!r}, "started-{name}"), "w").close()
    {wait}
    open(os.path.join({marks!r}, "done-{name}"), "w").close()
    """


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def flask(
    project: Path,
    urls: dict[str, str],
    *args: str,
    stderr: int | IO[bytes],
    stdout: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """``flask db ARGS`` in a real process on the app above, with one URL per bind."""
    (project / "progressapp.py").write_text(URL_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FORCE_COLOR"))}
    env.update({f"URL_{name.upper()}": url for name, url in urls.items()})
    env.update(FLASK_APP="progressapp:create_app", COLUMNS="80", LINES="40")
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )


def screen(stream: str) -> list[str]:
    """What a terminal shows once ``stream`` is written to it (the emulation that
    scripts/render_output.py draws docs/output.md's examples with), line by line."""
    lines: list[str] = _RENDER["screen"](stream).splitlines()
    return lines


# -- the live display ticks -------------------------------------------------------


def clocks(stream: str, needle: str) -> list[float]:
    """The seconds shown at the end of each drawn line holding ``needle``."""
    found = []
    frames = re.sub(r"\x1b\[[0-9]*[AK]|\r", "\n", stream)
    for line in ANSI.sub("", frames).splitlines():
        match = re.search(r"(\d+)\.(\d)s\s*$", line)
        if needle in line and match:
            found.append(float(match.group(0).strip()[:-1]))
    return found


def test_live_clocks_tick(
    make_app: MakeApp, make_url: MakeURL, project: Path, dialect: str
) -> None:
    """While a slow statement runs, its step's clock and the run's total go up."""
    url = make_url(dialect)
    app, alembic = make_app({"default": url})
    write(project, "default", "slow01", slow(project, "default", 3, dialect))
    err = io.StringIO()
    output = Output(rich=True, width=80, stdout=io.StringIO(), stderr=err)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context(), output.progress() as progress:
                alembic.upgrade(on_plan=progress.start, on_event=progress)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_until((project / "started-default").exists, "the step to start")
        time.sleep(0.6)
        earlier = err.getvalue()
        time.sleep(0.8)
        later = err.getvalue()
        assert not (project / "done-default").exists(), "the step ended too soon"
    finally:
        worker.join(timeout=60)
    assert not failures, failures
    step = clocks(earlier, "step 1 of 1: base -> slow01 slow slow01")
    total = clocks(earlier, "0 of 1 steps done, ")
    assert step, earlier
    assert total, earlier
    later_step = clocks(later, "step 1 of 1: base -> slow01 slow slow01")
    later_total = clocks(later, "0 of 1 steps done, ")
    assert later_step[-1] > step[-1]
    assert later_total[-1] > total[-1]
    assert later_total[-1] >= later_step[-1]
    assert version_rows(url) == {"slow01"}


def test_live_area_keeps_a_bounded_height(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """However long the plan, the live area shows the last few finished steps only."""
    app, alembic = make_app({"default": make_url()})
    down = None
    for number in range(8):
        write(project, "default", f"step{number:02d}", down=down)
        down = f"step{number:02d}"
    err = io.StringIO()
    output = Output(rich=True, width=80, stdout=io.StringIO(), stderr=err)
    shown: list[str] = []
    progress: Any = output.progress()

    def on_event(event: Event) -> None:
        from rich.console import Console

        progress(event)
        frame = io.StringIO()
        Console(file=frame, width=80, force_terminal=True).print(progress.view)
        shown.append(frame.getvalue())

    with app.app_context(), progress:
        alembic.upgrade(on_plan=progress.start, on_event=on_event)
    last = ANSI.sub("", shown[-1]).splitlines()
    assert [line.split()[:5] for line in last[:-1]] == [
        ["✓", "default", f"step0{n - 1}", "->", f"step0{n}"] for n in (5, 6, 7)
    ], last  # the last three finished steps, newest last
    assert last[-1].startswith("8 of 8 steps done, ")
    # At most: three finished steps, the running one, the total.
    assert max(len(ANSI.sub("", frame).splitlines()) for frame in shown) == 5


def test_live_lines_stay_one_line(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """A long message is shortened in the middle to keep each live line one line; the ids
    stay whole, and the message goes when there is no room for it at all."""
    app, alembic = make_app({"default": make_url()})
    first, second = "a" * 12, "b" * 12
    message = "backfill the reporting events of every tenant " * 3
    write(project, "default", first, message=message)
    write(project, "default", second, down=first, message=message)
    for width in (60, 80, 120):
        output = Output(rich=True, width=width, stdout=io.StringIO(), stderr=io.StringIO())
        progress: Any = output.progress()
        frames: list[list[str]] = []

        def on_event(
            event: Event,
            progress: Any = progress,
            width: int = width,
            frames: list[list[str]] = frames,
        ) -> None:
            from rich.console import Console

            progress(event)
            frame = io.StringIO()
            Console(file=frame, width=width, force_terminal=True).print(progress.view)
            frames.append(ANSI.sub("", frame.getvalue()).splitlines())

        with app.app_context(), progress:
            alembic.upgrade(on_plan=progress.start, on_event=on_event)
            alembic.downgrade("base")
        running = [line for frame in frames for line in frame if "step 2 of 2" in line]
        assert running, frames
        for frame in frames:
            assert all(len(line) <= width for line in frame), frame
            assert len(frame) <= 3, frame  # the finished step, the running one, the total
        assert f"{first} -> {second}" in running[0]
        if width >= 80:
            assert "backfill t" in running[0], running
            assert "…" in running[0], running
        if width == 60:  # ids take the room: no message at all
            assert "backfill" not in running[0], running


@pytest.mark.parametrize("width", [80, 50])
def test_live_lines_stay_one_line_each(
    make_app: MakeApp, make_url: MakeURL, project: Path, width: int
) -> None:
    """Long ids, a long bind name and a long message: each live row stays one line within
    the terminal, with its id whole and its clock shown; the message gives way first."""
    bind = "customer_analytics_reporting_x"
    first, second = "2026_12_06_add_reporting_event_x", "20261206_add_the_reporting_index"
    message = "backfill the reporting events of every tenant from the nightly export"
    folder = project / "migrations" / bind
    folder.mkdir(parents=True)
    for rev, down in ((first, None), (second, first)):
        (folder / f"{rev}.py").write_text(
            REVISION.format(
                message=message,
                rev=rev,
                down=down,
                labels=None if down else (bind,),
                body="    pass",
            )
        )
    app, alembic = make_app({bind: make_url()})
    progress: Any = Output(
        rich=True, width=width, stdout=io.StringIO(), stderr=io.StringIO()
    ).progress()
    frames: list[list[str]] = []

    def on_event(event: Event) -> None:
        from rich.console import Console

        progress(event)
        frame = io.StringIO()
        Console(file=frame, width=width, force_terminal=True).print(progress.view)
        frames.append(ANSI.sub("", frame.getvalue()).splitlines())

    with app.app_context(), progress:
        alembic.upgrade(on_plan=progress.start, on_event=on_event)
    started, finished = frames[2], frames[-1]  # the second step running; both finished
    assert len(started) == 3, started  # the first step done, the second running, the total
    assert len(finished) == 3, finished
    for line in started + finished:
        assert len(line) <= width, line
    assert second in started[1], started
    assert re.search(r"\d\.\ds$", started[1]), started  # its clock
    assert second in finished[1], finished
    assert finished[1].endswith("s"), finished


# -- plain output: a line as each step starts ------------------------------------


def test_plain_start_lines(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """Piped, each step logs a line as it starts and as it ends, in the run's order."""
    app, _ = make_app({"default": make_url(), "other": make_url()})
    for bind in ("default", "other"):
        write(project, bind, f"{bind}01")
        write(project, bind, f"{bind}02", down=f"{bind}01")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "upgrade", "--parallel", "1"])
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    expected = []
    steps = [
        ("default", "base", "default01"),
        ("default", "default01", "default02"),
        ("other", "base", "other01"),
        ("other", "other01", "other02"),
    ]
    for number, (bind, source, rev) in enumerate(steps, 1):
        line = f"[{number}/4] {bind}: upgrade {source} -> {rev} slow {rev}"
        expected += [f"{line} (started)", f"{line} (0.00s)"]
    assert [re.sub(r"\(\d+\.\d\ds\)$", "(0.00s)", line) for line in progress] == expected


def test_plain_start_line_side_by_side(make_url: MakeURL, project: Path) -> None:
    """Side by side, a log shows the hanging step's start line while it runs."""
    urls = {"default": make_url(), "other": make_url()}
    write(project, "default", "default01", slow(project, "default", 30))
    write(project, "other", "other01")
    log = project / "run.log"
    with open(log, "wb") as handle:
        process = flask(project, urls, "upgrade", stderr=handle)
    try:
        wait_until((project / "started-default").exists, "the slow step to start")
        wait_until(lambda: "other01 slow other01 (0." in log.read_text(), "the other bind")
        text = log.read_text()
        assert "[1/2] default: upgrade base -> default01 slow default01 (started)\n" in text
        assert "default01 slow default01 (0." not in text
    finally:
        process.kill()
        process.wait()


# -- the first signal is said at once ------------------------------------------------


def test_first_sigint_said_at_once(make_url: MakeURL, project: Path) -> None:
    """Piped: the notice comes while the step still runs; the run ends after it, exit 130."""
    url = make_url()
    write(project, "default", "default01", slow(project, "default", 4))
    write(project, "default", "default02", down="default01")
    log = project / "run.log"
    with open(log, "wb") as handle:
        process = flask(project, {"default": url}, "upgrade", stderr=handle)
    try:
        wait_until((project / "started-default").exists, "the slow step to start")
        process.send_signal(signal.SIGINT)
        notice = (
            "SIGINT received: the run stops once the running step ends; no further step "
            "starts. Press Ctrl-C again to abort that step instead: it is then rolled back "
            "where the database can undo it.\n"
        )
        wait_until(lambda: notice in log.read_text(), "the notice", timeout=3)
        assert not (project / "done-default").exists(), "the notice came after the step"
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    lines = text.splitlines()
    ended = next(i for i, line in enumerate(lines) if re.match(r"\[1/2\] .* \(\d+\.\d\ds\)$", line))
    assert lines.index("[1/2] default: upgrade base -> default01 slow default01 (started)") < (
        lines.index(notice.strip())
    )
    assert lines.index(notice.strip()) < ended
    assert "[2/2]" not in text
    assert "Error: Upgrade interrupted by SIGINT: 1 step(s) applied, 1 not run." in text
    assert version_rows(url) == {"default01"}


def test_second_sigint_aborts_the_step(make_url: MakeURL, project: Path, dialect: str) -> None:
    """A second SIGINT abandons the running step at once; it is rolled back where the
    database can undo it (MariaDB keeps the table its step created)."""
    url = make_url(dialect)
    write(project, "default", "default01", slow(project, "default", 30, dialect))
    log = project / "run.log"
    with open(log, "wb") as handle:
        process = flask(project, {"default": url}, "upgrade", stderr=handle)
    try:
        wait_until((project / "started-default").exists, "the slow step to start")
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        wait_until(lambda: "Press Ctrl-C again" in log.read_text(), "the notice", timeout=5)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert time.monotonic() - started < 20
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    assert "Step default01 of bind 'default' was abandoned by a second signal" in text
    # The summary says the step was interrupted, not that the bind was not run, and the
    # step's "(started)" line gets its end.
    assert "not run" not in text.replace("0 not run", "")
    assert "\ndefault: interrupted base -> base (0 steps, " in text
    assert "\nInterrupted: default: base -> default01 (" in text
    assert not (project / "done-default").exists()
    assert version_rows(url) == set()
    if dialect == "mysql":
        assert "t_default" in table_names(url)
        assert "kept by MariaDB" in text or "kept by MySQL" in text
    else:
        assert "t_default" not in table_names(url)


def test_terminal_summary_marks_an_interrupted_bind() -> None:
    """On a terminal, the summary marks the bind whose step a second signal abandoned."""
    from flask_alembic.plan import BindResult
    from flask_alembic.plan import MigrationResult
    from flask_alembic.plan import Plan
    from flask_alembic.plan import Step

    abandoned = Step(
        bind="default", direction="upgrade", revision="b2", source=("a1",), destination=("b2",)
    )
    later = Step(bind="other", direction="upgrade", revision="c3", source=(), destination=("c3",))
    plan = Plan(
        direction="upgrade", steps=(abandoned, later), start={"default": ("a1",), "other": ()}
    )
    result = MigrationResult(
        plan=plan,
        binds=(
            BindResult(bind="default", before=("a1",), after=("a1",), applied=(), elapsed=1.0),
            BindResult(bind="other", before=(), after=(), applied=(), elapsed=0.0),
        ),
        error="interrupted by SIGINT",
        not_run=(later,),
    )
    err = io.StringIO()
    Output(rich=True, width=80, stdout=io.StringIO(), stderr=err).result(result)
    lines = ANSI.sub("", err.getvalue()).splitlines()
    assert any(line.startswith("default (interrupted) ") for line in lines), lines
    assert any(line.startswith("other ") and "(" not in line for line in lines), lines
    assert "Interrupted: default: a1 -> b2" in lines, lines
    assert "Not run: other: base -> c3" in lines, lines


def test_sigterm_notice_side_by_side(make_url: MakeURL, project: Path) -> None:
    """Side by side, the notice says the running steps finish and more signals are ignored."""
    urls = {"default": make_url(), "other": make_url()}
    for bind in urls:
        write(project, bind, f"{bind}01", slow(project, bind, 3))
        write(project, bind, f"{bind}02", down=f"{bind}01")
    log = project / "run.log"
    with open(log, "wb") as handle:
        process = flask(project, urls, "upgrade", "--parallel", "2", stderr=handle)
    try:
        for bind in urls:
            wait_until((project / f"started-{bind}").exists, f"{bind}'s step to start")
        process.send_signal(signal.SIGTERM)
        notice = (
            "SIGTERM received: the run stops once the running steps end; no further step "
            "starts. Binds are migrating side by side, so these steps cannot be aborted: "
            "each finishes and commits, and further signals are ignored."
        )
        wait_until(lambda: notice in log.read_text(), "the notice", timeout=2)
        assert not any((project / f"done-{bind}").exists() for bind in urls)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        process.kill()
        process.wait()
    for bind, url in urls.items():
        assert version_rows(url) == {f"{bind}01"}


def test_signal_inside_the_callback(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """A signal that lands while the progress callback runs (the run's event lock held, the
    output being written) is told once that callback returns: no deadlock, said once."""
    from flask_alembic.errors import MigrationInterruptedError
    from flask_alembic.executor import StepStarted
    from flask_alembic.executor import StopRequested

    app, alembic = make_app({"default": make_url()})
    write(project, "default", "default01")
    write(project, "default", "default02", down="default01")
    err = io.StringIO()
    progress = Output(rich=False, stdout=io.StringIO(), stderr=err).progress()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        progress(event)
        if isinstance(event, StepStarted) and event.index == 1:
            # The handler runs here, on this thread, before the callback returns.
            os.kill(os.getpid(), signal.SIGINT)

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("the run hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a lock waited for forever fails the test instead of hanging it
    try:
        with app.app_context(), pytest.raises(MigrationInterruptedError) as caught:
            alembic.upgrade(on_event=on_event)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert caught.value.exit_code == 130
    stops = [event for event in events if isinstance(event, StopRequested)]
    assert stops == [StopRequested(signal=signal.SIGINT, can_abort=True)]
    # The run stopped after its first step; the notice and that step's end come from two
    # threads, in no set order.
    assert events[0] == StepStarted(step=events[0].step, index=1, total=2)  # type: ignore[union-attr]
    assert sorted(type(event).__name__ for event in events[1:]) == ["StepFinished", "StopRequested"]
    assert err.getvalue().count("SIGINT received: the run stops once the running step ends") == 1


class Terminal:
    """A real pseudo-terminal for a process's standard output and error, read as it goes."""

    def __init__(self) -> None:
        import pty

        self.master, self.slave = pty.openpty()
        self.data = b""

    def read(self, until: Callable[[str], bool], timeout: float) -> str:
        """Read until ``until(text)`` holds or the process closes the terminal."""
        deadline = time.monotonic() + timeout
        while not until(self.text):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; read: {self.text[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the process is gone and the terminal closed
                    chunk = b""
                if not chunk:
                    break
                self.data += chunk
        return self.text

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)


def test_rich_notice_and_ticking_on_a_terminal(make_url: MakeURL, project: Path) -> None:
    """On a real terminal: the clock ticks, the notice comes at once, the plan and the
    summary remain."""
    url = make_url()
    write(project, "default", "default01", slow(project, "default", 4))
    write(project, "default", "default02", down="default01")
    terminal = Terminal()
    try:
        process = flask(
            project,
            {"default": url},
            "upgrade",
            stdout=terminal.slave,
            stderr=terminal.slave,
        )
        os.close(terminal.slave)
        terminal.slave = -1
        try:
            step = "step 1 of 2: base -> default01 slow default01"
            terminal.read(lambda text: bool(clocks(text, step)), 20)
            shown = terminal.read(lambda text: max(clocks(text, step) or [0]) >= 1.0, 20)
            assert len(set(clocks(shown, step))) >= 3, "the clock did not move"
            process.send_signal(signal.SIGINT)
            terminal.read(lambda text: "Press Ctrl-C again" in ANSI.sub("", text), 1.5)
            assert not (project / "done-default").exists(), "the notice came after the step"
            terminal.read(lambda text: "stopping after the running step" in ANSI.sub("", text), 2)
            assert not (project / "done-default").exists()
            text = terminal.read(lambda text: False, 60)
            assert process.wait(timeout=10) == 130
        finally:
            process.kill()
            process.wait()
    finally:
        terminal.close()
    remains = screen(text)
    assert remains[0] == "upgrade plan (2 steps)", remains
    assert any(line.startswith("SIGINT received: the run stops") for line in remains), remains
    assert not any("step 1 of 2" in line for line in remains), remains
    assert "summary" in remains, remains
    assert " ".join(remains[-2:]).startswith(
        "Error: Upgrade interrupted by SIGINT: 1 step(s) applied, 1 not run."
    ), remains
    assert version_rows(url) == {"default01"}


# -- a terminal keeps the plan and the summary, not each step three times ----------


def test_terminal_shows_each_step_once(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """On a terminal, a step shows in the plan; the live area goes and the summary stays."""
    app, _ = make_app({"default": make_url(), "other": make_url()})
    write(project, "default", "default01")
    write(project, "other", "other01", slow(project, "other", 0.5))
    runner = app.test_cli_runner(env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    result = runner.invoke(args=["db", "upgrade"], color=True)
    assert result.exit_code == 0, result.output
    assert "step 2 of 2: base -> other01" in result.stderr  # the live area was drawn
    remains = screen(result.stderr)
    assert remains[0] == "upgrade plan (2 steps)", remains
    for label in ("base -> default01", "base -> other01"):
        assert sum(label in line for line in remains) == 1, remains
    assert not any("✓" in line or "step 1 of" in line for line in remains), remains
    assert "summary" in remains
    assert remains[-1].startswith("other "), remains


def test_terminal_keeps_a_failed_step(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """On a terminal, the failed step stays visible with its error, above the summary."""
    app, _ = make_app({"default": make_url(), "other": make_url()})
    write(project, "default", "default01")
    write(project, "other", "other01", 'op.execute("INSERT INTO no_such_table VALUES (1)")')
    runner = app.test_cli_runner(env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    result = runner.invoke(args=["db", "upgrade", "--parallel", "1"], color=True)
    assert result.exit_code == 1, result.output
    remains = screen(result.stderr)
    failed = [number for number, line in enumerate(remains) if line.startswith("✗ ")]
    assert len(failed) == 1, remains
    shown = " ".join(remains[failed[0] : failed[0] + 2])
    assert shown.startswith(
        "✗ other: base -> other01 slow other01: OperationalError: no such table: no_such_table"
    ), remains
    assert failed[0] < remains.index("summary")
    assert not any(line.startswith("✓") for line in remains), remains
    assert "Error: Upgrade of bind 'other' failed at revision other01" in "\n".join(remains)


def test_live_rows_keep_their_natural_width() -> None:
    """Short rows are not stretched to the terminal: the clock follows the step, as in
    docs/output.md's example of the live area."""
    from rich.console import Console

    from flask_alembic.executor import StepFinished
    from flask_alembic.executor import StepStarted
    from flask_alembic.plan import Step

    def step(bind: str, source: str, revision: str, message: str) -> Step:
        return Step(
            bind=bind,
            direction="upgrade",
            revision=revision,
            source=(source,),
            destination=(revision,),
            message=message,
        )

    first = step("default", "2b3c4d5e6f70", "3c4d5e6f7081", "backfill")
    second = step("default", "3c4d5e6f7081", "4d5e6f708192", "user country")
    progress: Any = Output(
        rich=True, width=80, stdout=io.StringIO(), stderr=io.StringIO()
    ).progress()
    view = progress.view
    view.total = 3
    view.record(StepStarted(step=first, index=1, total=3))
    view.record(StepFinished(step=first, index=1, total=3, elapsed=0.01))
    view.record(StepStarted(step=second, index=2, total=3))
    frame = io.StringIO()
    Console(file=frame, width=80, no_color=True).print(view)
    lines = frame.getvalue().splitlines()
    assert lines[0] == "✓ default 2b3c4d5e6f70 -> 3c4d5e6f7081 backfill                  0.01s"
    assert re.fullmatch(
        r". default step 2 of 3: 3c4d5e6f7081 -> 4d5e6f708192 user country +\d\.\ds", lines[1]
    ), lines
