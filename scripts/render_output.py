"""Regenerate the examples of docs/output.md from real output.

    python scripts/render_output.py          # rewrite the generated blocks
    python scripts/render_output.py --check  # exit 1 if docs/output.md is out of date

It builds a demo app in a temporary folder (six binds in different states, fixed
revision ids and dates), runs real ``flask db`` commands in subprocesses, on a terminal
of 80 and 120 columns (``FORCE_COLOR``, colours then removed) and piped (plain), and
replaces every block of docs/output.md between ``<!-- generated: NAME -->`` and
``<!-- /generated -->`` with the output of the example ``NAME`` (see ``EXAMPLES``).

The temporary folder is shown as ``/home/ada/projects/shop``: the real folder is given a
path of the same length, so tables keep the width they were drawn with. Times are shown
as ``0.01s``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
OUTPUT_MD = REPOSITORY / "docs" / "output.md"
SHOWN_ROOT = "/home/ada/projects/shop"
DATE = "2026-12-01 09:30:00.000000"

APP = '''\
"""The demo app of docs/output.md: six binds, each in another state."""

import os

import sqlalchemy as sa
from flask import Flask

from flask_alembic import Alembic

HERE = os.path.dirname(os.path.abspath(__file__))


def schema(*tables):
    metadata = sa.MetaData()
    for name in tables:
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def create_app():
    app = Flask(__name__, root_path=HERE)
    # One bind at a time: the lines of a run come in the same order every time.
    app.config["ALEMBIC_PARALLEL"] = 1
    sqlite = {
        name: f"sqlite:///{HERE}/instance/{name}.db"
        for name in ("default", "analytics", "billing", "audit")
    }
    # Its folder does not exist: the database cannot be opened.
    sqlite["reports"] = f"sqlite:///{HERE}/offline/reports.db"
    engines = {name: sa.create_engine(url) for name, url in sqlite.items()}
    # No models: not managed, never connected to.
    engines["warehouse"] = sa.create_engine(
        "postgresql+psycopg://reporting:secret@warehouse.db.internal:5432/reporting_warehouse"
    )
    page_view = schema("page_view")
    page_view.tables["page_view"].append_column(sa.Column("path", sa.String(200)))
    metadatas = {
        "default": schema("user"),
        "analytics": page_view,
        "billing": schema("invoice"),
        "audit": schema("audit_entry"),
        "reports": schema("report"),
        "warehouse": sa.MetaData(),
    }
    Alembic(app, engines=engines, metadatas=metadatas)
    return app
'''

#: Revision ids: twelve hex characters, and one custom 32-character id.
R = {
    "user": "1a2b3c4d5e6f",
    "email": "2b3c4d5e6f70",
    "views": "9e8d7c6b5a40",
    "referrer": "2026_12_01_page_view_referrer_id",
    "invoice": "5f4e3d2c1b0a",
    "tax": "72b19fe32137",
    "currency": "e7891c847d68",
    "audit": "b8d1962377fb",
}
UNKNOWN = "9f1c0de5a7b2"


def _build(root: Path) -> None:
    """The demo app, its revisions and databases."""
    (root / "instance").mkdir(parents=True)
    (root / "app.py").write_text(APP)
    sys.path.insert(0, str(root))
    try:
        demo = importlib.import_module("app")
    finally:
        sys.path.remove(str(root))
    flask_app = demo.create_app()
    alembic = flask_app.extensions["alembic"]
    with flask_app.app_context():
        alembic.revision("create the user table", bind="default", rev_id=R["user"])
        alembic.revision(
            "add email and display name to user, with a unique index on email",
            empty=True,
            bind="default",
            rev_id=R["email"],
        )
        alembic.revision("page views", bind="analytics", rev_id=R["views"])
        alembic.revision("create invoices", bind="billing", rev_id=R["invoice"])
        alembic.revision("audit log", bind="audit", rev_id=R["audit"])
        alembic.upgrade(bind=["default", "analytics", "billing", "audit"])
        alembic.revision(
            "page view referrer\n\nKeeps where a visitor came from, for the weekly report.",
            empty=True,
            bind="analytics",
            rev_id=R["referrer"],
            depend=R["email"],
            label="referrers",
        )
        alembic.revision("tax rates", empty=True, bind="billing", rev_id=R["tax"])
        alembic.revision(
            "currencies",
            empty=True,
            bind="billing",
            rev_id=R["currency"],
            parent=R["invoice"],
            splice=True,
        )
    sys.modules.pop("app", None)
    # Two pending revisions with findings for `lint` and `upgrade --plan` to show: a
    # dropped column, accepted, and rows changed with the schema.
    _body(
        root,
        R["referrer"],
        'lint_allow = {"drop-column": "the path moved to referrer in 3.1"}\n',
        'op.add_column("page_view", sa.Column("referrer", sa.String(200)))\n'
        '    op.drop_column("page_view", "path")',
        'op.add_column("page_view", sa.Column("path", sa.String(200)))\n'
        '    op.drop_column("page_view", "referrer")',
    )
    _body(
        root,
        R["tax"],
        "",
        'op.add_column("invoice", sa.Column("tax_rate", sa.Numeric(5, 2)))\n'
        '    op.execute("UPDATE invoice SET tax_rate = 0.2")',
        'op.drop_column("invoice", "tax_rate")',
    )
    for path in root.rglob("*.py"):
        text = path.read_text()
        fixed = re.sub(r"Create Date: .*", f"Create Date: {DATE}", text)
        if fixed != text:
            path.write_text(fixed)
    # A database at a revision no file has: ahead, or a file lost.
    with sqlite3.connect(root / "instance" / "audit.db") as connection:
        connection.execute(f"UPDATE alembic_version SET version_num = '{UNKNOWN}'")
    connection.close()


def _body(root: Path, rev: str, header: str, upgrade: str, downgrade: str) -> None:
    """Give the empty revision ``rev`` these ``upgrade()`` and ``downgrade()`` bodies, and
    ``header`` (module-level lines) before them."""
    (path,) = (p for p in root.rglob(f"{rev}_*.py"))
    text = path.read_text()
    text = text.replace("import sqlalchemy as sa\n", "", 1)
    text = text.replace(
        "from alembic import op\n", "from alembic import op\nimport sqlalchemy as sa\n"
    )
    text = text.replace(
        "\n\ndef upgrade() -> None:\n    pass", f"{header}\n\ndef upgrade() -> None:\n    {upgrade}"
    )
    text = text.replace(
        "def downgrade() -> None:\n    pass", f"def downgrade() -> None:\n    {downgrade}"
    )
    path.write_text(text)


STATUS = "status"
LOG = "log"
SHOW = f"show {R['referrer']}"
PLAN = "upgrade --plan --bind analytics --bind billing"
UPGRADE = "upgrade --bind analytics --bind billing"
#: name -> (command line, mode): "plain" (piped), or the columns of a terminal.
EXAMPLES: dict[str, tuple[str, str | int]] = {
    "status-120": (STATUS, 120),
    "status-80": (STATUS, 80),
    "status-plain": (STATUS, "plain"),
    "current-80": ("current", 80),
    "current-plain": ("current", "plain"),
    "plan-80": (PLAN, 80),
    "plan-plain": (PLAN, "plain"),
    "upgrade-120": (UPGRADE, 120),
    "upgrade-plain": (UPGRADE, "plain"),
    "log-120": (LOG, 120),
    "log-80": (LOG, 80),
    "log-plain": (LOG, "plain"),
    "show-80": (SHOW, 80),
    "show-plain": (SHOW, "plain"),
    "lint-plain": ("lint --all", "plain"),
    "lint-80": ("lint --all", 80),
}


def _run(root: Path, command: str, mode: str | int) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM", "FLASK_APP"}
    }
    env |= {"PYTHONHASHSEED": "0", "TERM": "xterm-256color"}
    if mode != "plain":
        env |= {"FORCE_COLOR": "1", "COLUMNS": str(mode)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", *command.split()],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    # Not text=True: its universal newlines would turn the live display's "\r" into "\n".
    text = done.stdout.decode()
    if mode != "plain":
        text = screen(text)
    text = text.replace(str(root), SHOWN_ROOT)
    text = re.sub(r"\b\d+\.\d\ds\b", "0.01s", text)
    return f"$ flask db {command}\n" + "\n".join(line.rstrip() for line in text.splitlines())


def screen(stream: str) -> str:
    """What stays on a terminal once ``stream`` is written to it: the lines that remain
    after Rich's live frames are erased (a minimal terminal: new line, carriage return,
    cursor up, erase line), colours left out."""
    lines: list[str] = [""]
    row = column = 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", stream):
        if not token:
            continue
        if token == "\n":
            row, column = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            column = 0
        elif token.startswith("\x1b["):
            code, count = token[-1], token[2:-1]
            if code == "A":  # cursor up
                row = max(row - int(count or 1), 0)
            elif code == "K" and count == "2":  # erase the whole line
                lines[row] = ""
            elif code == "K":  # erase to the end of the line
                lines[row] = lines[row][:column]
        else:
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + len(token) :]
            column += len(token)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() for line in lines)


def render() -> dict[str, str]:
    """Every example's text, by name."""
    base = Path(tempfile.mkdtemp(prefix="fa"))
    try:
        filler = len(SHOWN_ROOT) - len(str(base)) - 1
        if filler < 1:
            raise SystemExit(
                f"The temporary folder {base} is too long to stand for {SHOWN_ROOT}: "
                "run with TMPDIR=/tmp."
            )
        root = base / ("p" * filler)
        root.mkdir()
        _build(root)
        instance = root / "instance"
        saved = base / "saved"
        shutil.copytree(instance, saved)
        examples = {}
        for name, (command, mode) in EXAMPLES.items():
            examples[name] = _run(root, command, mode)
            if command.startswith("upgrade") and "--plan" not in command:
                shutil.rmtree(instance)
                shutil.copytree(saved, instance)
        return examples
    finally:
        shutil.rmtree(base)


BLOCK = re.compile(r"(<!-- generated: (\S+) -->\n)(.*?)(<!-- /generated -->)", re.DOTALL)


def rewrite(markdown: str, examples: dict[str, str]) -> str:
    """``markdown`` with each generated block replaced by its example."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in examples:
            raise SystemExit(f"docs/output.md names an unknown example {name!r}.")
        return f"{match.group(1)}```text\n{examples[name]}\n```\n{match.group(4)}"

    return BLOCK.sub(replace, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").strip())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/output.md is out of date"
    )
    parser.add_argument(
        "--print", action="store_true", help="print every example instead of writing"
    )
    options = parser.parse_args(argv)
    examples = render()
    if options.print:
        for name, text in examples.items():
            print(f"--- {name}\n{text}")
        return 0
    markdown = OUTPUT_MD.read_text()
    updated = rewrite(markdown, examples)
    if options.check:
        if updated != markdown:
            print("docs/output.md is out of date: run python scripts/render_output.py.")
            return 1
        return 0
    OUTPUT_MD.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
