"""Every lint rule on every dialect it applies to: a revision that makes it fire, the same
revision accepting it with ``lint_allow``, and revisions where it must stay silent.

Each revision runs after ``r0``, which creates ``account`` (id, name, email, other_id, an
index ``ix_account_name``), ``other`` and ``legacy``: tables that exist before the
revision linted. Linting runs offline: the databases are made only to give each bind its
dialect (and its current revision, for ``lint()``).
"""

from __future__ import annotations

import logging
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import MakeURL
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.lint import Finding
from flask_alembic.lint_rules import RULES

SQLITE, PG, MY = "sqlite", "postgresql", "mysql"
ALL = (SQLITE, PG, MY)

FILE = '''\
"""{message}"""

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
{allow}

def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

BASE_UP = """\
op.create_table(
    "account",
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("email", sa.String(50)),
    sa.Column("other_id", sa.Integer()),
)
op.create_index("ix_account_name", "account", ["name"])
op.create_table("other", sa.Column("id", sa.Integer(), primary_key=True))
op.create_table("legacy", sa.Column("id", sa.Integer(), primary_key=True))
"""
BASE_DOWN = 'op.drop_table("legacy")\nop.drop_table("other")\nop.drop_table("account")'

#: A downgrade() that is not empty, for the revisions whose downgrade is not the point.
NO_WAY_BACK = 'raise NotImplementedError("one way")'

#: On PostgreSQL, every revision but those testing no-lock-timeout sets a lock timeout
#: first, so that the rule tested is the only one firing. (For the session: SET LOCAL
#: would end with the transaction, at the start of an autocommit_block().)
GUARD = "op.execute(\"SET lock_timeout = '5s'\")\n"


def write(
    folder: Path,
    revision: str,
    down: str | tuple[str, ...] | None,
    upgrade: str,
    *,
    allow: object = None,
    downgrade: str = NO_WAY_BACK,
    raw_allow: str | None = None,
) -> Path:
    """Write a revision file; ``allow`` is written as ``lint_allow = <repr>``."""
    if raw_allow is not None:
        allow_line = raw_allow
    else:
        allow_line = "" if allow is None else f"lint_allow = {allow!r}"
    path = folder / f"{revision}_test.py"
    path.write_text(
        FILE.format(
            message=revision,
            revision=revision,
            down=down,
            allow=allow_line,
            upgrade=textwrap.indent(upgrade.strip("\n"), "    "),
            downgrade=textwrap.indent(downgrade.strip("\n"), "    "),
        ),
        encoding="utf-8",
    )
    return path


def project(make_app: MakeApp, make_url: MakeURL, on: str) -> tuple[Flask, Alembic, Path]:
    """An app on a fresh database of ``on``, with ``r0`` written."""
    app, alembic = make_app(make_url(on))
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    return app, alembic, folder


def body(upgrade: str, on: str, *, guard: bool = True) -> str:
    return (GUARD if guard and on == PG else "") + textwrap.dedent(upgrade)


def lint(app: Flask, alembic: Alembic, *revisions: str) -> list[Finding]:
    with app.app_context():
        return list(alembic.lint(*revisions).findings)


def rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule for f in findings)


@dataclass(frozen=True)
class Case:
    """A revision body that makes ``rule`` fire on the dialects ``on``."""

    rule: str
    name: str
    upgrade: str
    on: tuple[str, ...]
    #: What the message names (the table, column, index).
    names: tuple[str, ...]
    #: Other rules the body makes fire too, by dialect.
    also: tuple[str, ...] = ()


FIRES = [
    # -- drop-table
    Case("drop-table", "op", 'op.drop_table("legacy")', ALL, ("'legacy'",)),
    Case("drop-table", "sql", 'op.execute("DROP TABLE legacy")', ALL, ("'legacy'",)),
    # -- drop-column
    Case("drop-column", "op", 'op.drop_column("account", "name")', ALL, ("'name'", "'account'")),
    Case(
        "drop-column",
        "sql",
        'op.execute("ALTER TABLE account DROP COLUMN name")',
        ALL,
        ("'name'", "'account'"),
    ),
    Case(
        "drop-column",
        "batch",
        """
        with op.batch_alter_table("account") as batch:
            batch.drop_column("name")
        """,
        ALL,
        ("'name'", "'account'"),
    ),
    # -- rename-table
    Case(
        "rename-table",
        "op",
        'op.rename_table("legacy", "legacy_old")',
        ALL,
        ("'legacy'", "'legacy_old'"),
    ),
    Case(
        "rename-table",
        "sql",
        'op.execute("ALTER TABLE legacy RENAME TO legacy_old")',
        ALL,
        ("'legacy'", "'legacy_old'"),
    ),
    Case(
        "rename-table",
        "sql-mysql",
        'op.execute("RENAME TABLE legacy TO legacy_old")',
        (MY,),
        ("'legacy'", "'legacy_old'"),
    ),
    # -- rename-column
    Case(
        "rename-column",
        "op",
        'op.alter_column("account", "name", new_column_name="full_name", '
        "existing_type=sa.String(50))",
        ALL,
        ("'name'", "'account'", "'full_name'"),
    ),
    Case(
        "rename-column",
        "sql",
        'op.execute("ALTER TABLE account RENAME COLUMN name TO full_name")',
        ALL,
        ("'name'", "'account'", "'full_name'"),
    ),
    Case(
        "rename-column",
        "batch",
        """
        with op.batch_alter_table("account") as batch:
            batch.alter_column("name", new_column_name="full_name", existing_type=sa.String(50))
        """,
        ALL,
        ("'name'", "'account'", "'full_name'"),
    ),
    Case(
        "rename-column",
        "sql-mysql-change",
        'op.execute("ALTER TABLE account CHANGE name full_name VARCHAR(50)")',
        (MY,),
        ("'name'", "'account'", "'full_name'"),
        # CHANGE restates the type: the linter cannot know it is the same.
        also=("change-column-type",),
    ),
    # -- change-column-type
    Case(
        "change-column-type",
        "op",
        'op.alter_column("account", "other_id", type_=sa.BigInteger(), existing_type=sa.Integer())',
        ALL,
        ("'other_id'", "'account'", "BIGINT"),
    ),
    Case(
        "change-column-type",
        "op-narrower",
        'op.alter_column("account", "name", type_=sa.String(20), existing_type=sa.String(50))',
        ALL,
        ("'name'", "'account'", "VARCHAR(20)"),
    ),
    Case(
        "change-column-type",
        "op-unknown-old-type",
        'op.alter_column("account", "name", type_=sa.String(100))',
        (PG,),
        ("'name'", "'account'", "VARCHAR(100)"),
    ),
    Case(
        "change-column-type",
        "op-wider-copies",
        'op.alter_column("account", "name", type_=sa.String(100), existing_type=sa.String(50))',
        (SQLITE, MY),
        ("'name'", "'account'", "VARCHAR(100)"),
    ),
    Case(
        "change-column-type",
        "batch",
        """
        with op.batch_alter_table("account") as batch:
            batch.alter_column("other_id", type_=sa.BigInteger(), existing_type=sa.Integer())
        """,
        ALL,
        ("'other_id'", "'account'", "BIGINT"),
    ),
    Case(
        "change-column-type",
        "sql-postgresql",
        'op.execute("ALTER TABLE account ALTER COLUMN other_id TYPE BIGINT")',
        (PG,),
        ("'other_id'", "'account'", "BIGINT"),
    ),
    Case(
        "change-column-type",
        "sql-mysql-modify",
        'op.execute("ALTER TABLE account MODIFY other_id BIGINT NULL")',
        (MY,),
        ("'other_id'", "'account'", "BIGINT"),
    ),
    # -- add-not-null-column
    Case(
        "add-not-null-column",
        "op",
        'op.add_column("account", sa.Column("age", sa.Integer(), nullable=False))',
        ALL,
        ("'age'", "'account'"),
    ),
    Case(
        "add-not-null-column",
        "op-python-default",
        'op.add_column("account", sa.Column("age", sa.Integer(), nullable=False, default=0))',
        ALL,
        ("'age'", "'account'"),
    ),
    Case(
        "add-not-null-column",
        "sql",
        'op.execute("ALTER TABLE account ADD COLUMN age INTEGER NOT NULL")',
        ALL,
        ("'age'", "'account'"),
    ),
    Case(
        "add-not-null-column",
        "batch",
        """
        with op.batch_alter_table("account") as batch:
            batch.add_column(sa.Column("age", sa.Integer(), nullable=False))
        """,
        ALL,
        ("'age'", "'account'"),
    ),
    # -- set-not-null
    Case(
        "set-not-null",
        "op",
        'op.alter_column("account", "email", nullable=False, existing_type=sa.String(50))',
        (PG, MY),
        ("'email'", "'account'"),
    ),
    Case(
        "set-not-null",
        "sql",
        'op.execute("ALTER TABLE account ALTER COLUMN email SET NOT NULL")',
        (PG,),
        ("'email'", "'account'"),
    ),
    # -- add-column-volatile-default
    Case(
        "add-column-volatile-default",
        "op-uuid",
        'op.add_column("account", sa.Column("token", sa.String(36), '
        'server_default=sa.text("gen_random_uuid()")))',
        (PG,),
        ("'token'", "'account'", "gen_random_uuid()"),
    ),
    Case(
        "add-column-volatile-default",
        "op-clock",
        'op.add_column("account", sa.Column("seen", sa.DateTime(), '
        'server_default=sa.text("clock_timestamp()")))',
        (PG,),
        ("'seen'", "'account'", "clock_timestamp()"),
    ),
    Case(
        "add-column-volatile-default",
        "op-identity",
        'op.add_column("account", sa.Column("n", sa.BigInteger(), sa.Identity()))',
        (PG,),
        ("'n'", "'account'", "identity"),
    ),
    Case(
        "add-column-volatile-default",
        "op-generated",
        'op.add_column("account", sa.Column("total", sa.Integer(), '
        'sa.Computed("other_id * 2", persisted=True)))',
        (PG,),
        ("'total'", "'account'", "generated"),
    ),
    Case(
        "add-column-volatile-default",
        "sql",
        'op.execute("ALTER TABLE account ADD COLUMN token UUID DEFAULT gen_random_uuid()")',
        (PG,),
        ("'token'", "'account'", "gen_random_uuid()"),
    ),
    Case(
        "add-column-volatile-default",
        "sql-serial",
        'op.execute("ALTER TABLE account ADD COLUMN n BIGSERIAL")',
        (PG,),
        ("'n'", "'account'", "bigserial"),
    ),
    # -- create-index-blocking
    Case(
        "create-index-blocking",
        "op",
        'op.create_index("ix_account_email", "account", ["email"])',
        (PG,),
        ("'ix_account_email'", "'account'"),
    ),
    Case(
        "create-index-blocking",
        "op-unique",
        'op.create_index("ix_account_email", "account", ["email"], unique=True)',
        (PG,),
        ("'ix_account_email'", "'account'"),
    ),
    Case(
        "create-index-blocking",
        "sql",
        'op.execute("CREATE INDEX ix_account_email ON account (email)")',
        (PG,),
        ("'ix_account_email'", "'account'"),
    ),
    Case(
        "create-index-blocking",
        "op-fulltext",
        'op.create_index("ft_account_name", "account", ["name"], mysql_prefix="FULLTEXT")',
        (MY,),
        ("'ft_account_name'", "'account'", "FULLTEXT"),
    ),
    Case(
        "create-index-blocking",
        "sql-fulltext",
        'op.execute("CREATE FULLTEXT INDEX ft_account_name ON account (name)")',
        (MY,),
        ("'ft_account_name'", "'account'", "FULLTEXT"),
    ),
    Case(
        "create-index-blocking",
        "sql-alter-fulltext",
        'op.execute("ALTER TABLE account ADD FULLTEXT INDEX ft_account_name (name)")',
        (MY,),
        ("'ft_account_name'", "'account'", "FULLTEXT"),
    ),
    # -- drop-index-blocking
    Case(
        "drop-index-blocking",
        "op",
        'op.drop_index("ix_account_name", table_name="account")',
        (PG,),
        ("'ix_account_name'", "'account'"),
    ),
    Case(
        "drop-index-blocking",
        "sql",
        'op.execute("DROP INDEX ix_account_name")',
        (PG,),
        ("'ix_account_name'",),
    ),
    # -- add-foreign-key-validating
    Case(
        "add-foreign-key-validating",
        "op",
        'op.create_foreign_key("fk_account_other", "account", "other", ["other_id"], ["id"])',
        (PG, MY),
        ("'fk_account_other'", "'account'"),
    ),
    Case(
        "add-foreign-key-validating",
        "sql",
        'op.execute("ALTER TABLE account ADD CONSTRAINT fk_account_other '
        'FOREIGN KEY (other_id) REFERENCES other (id)")',
        (PG, MY),
        ("'fk_account_other'", "'account'"),
    ),
    # -- concurrently-in-transaction
    Case(
        "concurrently-in-transaction",
        "op-create",
        'op.create_index("ix_account_email", "account", ["email"], postgresql_concurrently=True)',
        (PG,),
        ("'ix_account_email'", "'account'"),
    ),
    Case(
        "concurrently-in-transaction",
        "op-drop",
        'op.drop_index("ix_account_name", table_name="account", postgresql_concurrently=True)',
        (PG,),
        ("'ix_account_name'", "'account'"),
    ),
    Case(
        "concurrently-in-transaction",
        "sql-after-the-block",
        """
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY ix_account_email ON account (email)")
        op.execute("CREATE INDEX CONCURRENTLY ix_account_other ON account (other_id)")
        """,
        (PG,),
        ("'ix_account_other'", "'account'"),
    ),
    # -- add-check-constraint-validating
    Case(
        "add-check-constraint-validating",
        "op",
        'op.create_check_constraint("ck_account_email", "account", "email <> \'\'")',
        (PG,),
        ("'ck_account_email'", "'account'"),
    ),
    Case(
        "add-check-constraint-validating",
        "sql",
        "op.execute(\"ALTER TABLE account ADD CONSTRAINT ck_account_email CHECK (email <> '')\")",
        (PG,),
        ("'ck_account_email'", "'account'"),
    ),
    Case(
        "add-foreign-key-validating",
        "op-new-column",
        'op.add_column("account", sa.Column("other2_id", sa.Integer(), '
        'sa.ForeignKey("other.id", name="fk_account_other2")))',
        (PG, MY),
        ("'fk_account_other2'", "'account'"),
    ),
    Case(
        "add-foreign-key-validating",
        "sql-new-column",
        'op.execute("ALTER TABLE account ADD COLUMN other2_id INTEGER '
        'CONSTRAINT fk_account_other2 REFERENCES other (id)")',
        (PG,),
        ("'fk_account_other2'", "'account'"),
    ),
    # -- add-unique-constraint
    Case(
        "add-unique-constraint",
        "op-primary-key",
        'op.create_primary_key("pk_legacy", "legacy", ["id"])',
        (PG,),
        ("primary key 'pk_legacy'", "'legacy'"),
    ),
    Case(
        "add-unique-constraint",
        "sql-primary-key",
        'op.execute("ALTER TABLE legacy ADD PRIMARY KEY (id)")',
        (PG,),
        ("primary key", "'legacy'"),
    ),
    Case(
        "add-unique-constraint",
        "op",
        'op.create_unique_constraint("uq_account_email", "account", ["email"])',
        (PG,),
        ("'uq_account_email'", "'account'"),
    ),
    Case(
        "add-unique-constraint",
        "sql",
        'op.execute("ALTER TABLE account ADD CONSTRAINT uq_account_email UNIQUE (email)")',
        (PG,),
        ("'uq_account_email'", "'account'"),
    ),
    # -- data-change-in-schema-migration
    Case(
        "data-change-in-schema-migration",
        "sql",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.execute("UPDATE account SET nick = name")
        """,
        ALL,
        ("UPDATE account", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "construct",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        account = sa.table("account", sa.column("nick"))
        op.execute(account.update().values(nick="x"))
        """,
        ALL,
        ("UPDATE account", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "construct-delete",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.execute(sa.delete(sa.table("legacy")))
        """,
        ALL,
        ("DELETE legacy", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "several-statements",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.execute("UPDATE account SET nick = name; DELETE FROM legacy")
        """,
        ALL,
        ("UPDATE account", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "bind-execute",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.get_bind().execute(sa.text("UPDATE account SET nick = name"))
        """,
        ALL,
        ("UPDATE account", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "driver-sql",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.get_bind().exec_driver_sql("DELETE FROM legacy")
        """,
        ALL,
        ("DELETE legacy", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "bulk-insert",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.bulk_insert(sa.table("other", sa.column("id")), [{"id": 1}])
        """,
        ALL,
        ("INSERT other", "account.nick"),
    ),
    Case(
        "data-change-in-schema-migration",
        "schema-after-data",
        """
        op.execute("DELETE FROM legacy")
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        ALL,
        ("DELETE legacy", "account.nick"),
    ),
    # -- raw-sql
    Case("raw-sql", "not-sql", 'op.execute("FROBNICATE account")', ALL, ("FROBNICATE",)),
    Case(
        "raw-sql",
        "function",
        'op.execute("CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ '
        'LANGUAGE plpgsql")',
        (PG,),
        ("CREATE FUNCTION",),
    ),
    # -- no-lock-timeout (the guard is left out for this rule)
    Case(
        "no-lock-timeout",
        "op",
        'op.add_column("account", sa.Column("nick", sa.String(20)))',
        (PG,),
        ("account.nick",),
    ),
    Case(
        "no-lock-timeout",
        "sql",
        'op.execute("ALTER TABLE account ADD COLUMN nick VARCHAR(20)")',
        (PG,),
        ("account.nick",),
    ),
    Case(
        "no-lock-timeout",
        "set-after",
        """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.execute("SET LOCAL lock_timeout = '5s'")
        """,
        (PG,),
        ("account.nick",),
    ),
    Case(
        "no-lock-timeout",
        "set-local-ended-by-autocommit-block",
        """
        op.execute("SET LOCAL lock_timeout = '5s'")
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_account_email", "account", ["email"], postgresql_concurrently=True
            )
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        (PG,),
        ("account.nick",),
    ),
    Case(
        "no-lock-timeout",
        "set-local-before-the-block-ends",
        """
        with op.get_context().autocommit_block():
            op.execute("SET LOCAL lock_timeout = '5s'")
            op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        (PG,),
        ("account.nick",),
    ),
    Case(
        "no-lock-timeout",
        "set-to-zero",
        """
        op.execute("SET LOCAL lock_timeout = '5s'")
        op.execute("SET LOCAL lock_timeout = 0")
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        (PG,),
        ("account.nick",),
    ),
]


@dataclass(frozen=True)
class Silent:
    """A revision body where ``rule`` (and every other rule) stays silent on ``on``."""

    rule: str
    name: str
    upgrade: str
    on: tuple[str, ...]


CREATE_FRESH = 'op.create_table("fresh", sa.Column("id", sa.Integer(), primary_key=True))\n'

SILENT = [
    Silent("drop-table", "created-here", CREATE_FRESH + 'op.drop_table("fresh")', ALL),
    Silent(
        "drop-column",
        "created-here",
        CREATE_FRESH
        + 'op.add_column("fresh", sa.Column("x", sa.Integer()))\nop.drop_column("fresh", "x")',
        ALL,
    ),
    Silent("rename-table", "created-here", CREATE_FRESH + 'op.rename_table("fresh", "new")', ALL),
    Silent(
        "change-column-type",
        "varchar-wider",
        'op.alter_column("account", "name", type_=sa.String(100), existing_type=sa.String(50))',
        (PG,),
    ),
    Silent(
        "change-column-type",
        "varchar-same-length-prefix",
        """
        op.alter_column("account", "name", type_=sa.String(60), existing_type=sa.String(50))
        op.alter_column("account", "email", type_=sa.String(400), existing_type=sa.String(300))
        """,
        (MY,),
    ),
    Silent(
        "change-column-type",
        "numeric-more-precision",
        'op.alter_column("account", "other_id", type_=sa.Numeric(12, 2), '
        "existing_type=sa.Numeric(10, 2))",
        (PG,),
    ),
    Silent(
        "change-column-type",
        "restated",
        'op.alter_column("account", "other_id", type_=sa.Integer(), existing_type=sa.Integer())',
        ALL,
    ),
    Silent(
        "set-not-null",
        "already-not-null",
        'op.alter_column("account", "email", nullable=False, existing_nullable=False, '
        "existing_type=sa.String(50))",
        (PG, MY),
    ),
    Silent(
        "change-column-type",
        "numeric-unconstrained",
        'op.alter_column("account", "other_id", type_=sa.Numeric(), '
        "existing_type=sa.Numeric(10, 2))",
        (PG,),
    ),
    Silent(
        "change-column-type",
        "varchar-to-text",
        'op.alter_column("account", "name", type_=sa.Text(), existing_type=sa.String(50))',
        (PG,),
    ),
    Silent(
        "add-not-null-column",
        "server-default",
        'op.add_column("account", sa.Column("age", sa.Integer(), nullable=False, '
        'server_default="0"))',
        ALL,
    ),
    Silent(
        "add-not-null-column",
        "nullable",
        'op.add_column("account", sa.Column("age", sa.Integer()))',
        ALL,
    ),
    Silent(
        "add-not-null-column",
        "created-here",
        CREATE_FRESH + 'op.add_column("fresh", sa.Column("age", sa.Integer(), nullable=False))',
        ALL,
    ),
    Silent(
        "add-not-null-column",
        "batch-server-default",
        """
        with op.batch_alter_table("account") as batch:
            batch.add_column(sa.Column("age", sa.Integer(), nullable=False, server_default="0"))
        """,
        ALL,
    ),
    Silent(
        "set-not-null",
        "sqlite",
        """
        with op.batch_alter_table("account") as batch:
            batch.alter_column("email", nullable=False, existing_type=sa.String(50))
        """,
        (SQLITE,),
    ),
    Silent(
        "add-column-volatile-default",
        "now",
        'op.add_column("account", sa.Column("at", sa.DateTime(), server_default=sa.func.now()))',
        (PG,),
    ),
    Silent(
        "add-column-volatile-default",
        "constant",
        'op.add_column("account", sa.Column("kind", sa.String(10), server_default="basic"))',
        ALL,
    ),
    Silent(
        "add-column-volatile-default",
        "sql-current-timestamp",
        'op.execute("ALTER TABLE account ADD COLUMN at TIMESTAMP DEFAULT CURRENT_TIMESTAMP")',
        (PG,),
    ),
    Silent(
        "add-column-volatile-default",
        "not-postgresql",
        'op.add_column("account", sa.Column("token", sa.String(36), '
        'server_default=sa.text("uuid()")))',
        (SQLITE, MY),
    ),
    Silent(
        "add-column-volatile-default",
        "created-here",
        CREATE_FRESH + 'op.add_column("fresh", sa.Column("token", sa.String(36), '
        'server_default=sa.text("gen_random_uuid()")))',
        (PG,),
    ),
    Silent(
        "create-index-blocking",
        "concurrently",
        """
        with op.get_context().autocommit_block():
            op.create_index("ix_account_email", "account", ["email"], postgresql_concurrently=True)
        """,
        (PG,),
    ),
    Silent(
        "create-index-blocking",
        "sql-concurrently",
        """
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY ix_account_email ON account (email)")
        """,
        (PG,),
    ),
    Silent(
        "create-index-blocking",
        "plain-index-elsewhere",
        'op.create_index("ix_account_email", "account", ["email"])',
        (SQLITE, MY),
    ),
    Silent(
        "create-index-blocking",
        "created-here",
        CREATE_FRESH + 'op.create_index("ix_fresh_id", "fresh", ["id"])',
        ALL,
    ),
    Silent(
        "drop-index-blocking",
        "concurrently",
        """
        with op.get_context().autocommit_block():
            op.drop_index("ix_account_name", table_name="account", postgresql_concurrently=True)
        """,
        (PG,),
    ),
    Silent(
        "drop-index-blocking",
        "sql-concurrently",
        """
        with op.get_context().autocommit_block():
            op.execute("DROP INDEX CONCURRENTLY ix_account_name")
        """,
        (PG,),
    ),
    Silent(
        "add-check-constraint-validating",
        "not-valid",
        'op.create_check_constraint("ck_account_email", "account", "email <> \'\'", '
        "postgresql_not_valid=True)",
        (PG,),
    ),
    Silent(
        "add-check-constraint-validating",
        "sql-not-valid-then-validate",
        """
        op.execute(
            "ALTER TABLE account ADD CONSTRAINT ck_account_email CHECK (email <> '') NOT VALID"
        )
        op.execute("ALTER TABLE account VALIDATE CONSTRAINT ck_account_email")
        """,
        (PG,),
    ),
    Silent(
        "add-check-constraint-validating",
        "elsewhere",
        "op.execute(\"ALTER TABLE account ADD CONSTRAINT ck_account_email CHECK (email <> '')\")",
        (MY,),
    ),
    Silent(
        "drop-index-blocking",
        "elsewhere",
        'op.drop_index("ix_account_name", table_name="account")',
        (SQLITE, MY),
    ),
    Silent(
        "add-foreign-key-validating",
        "not-valid",
        'op.create_foreign_key("fk_account_other", "account", "other", ["other_id"], ["id"], '
        "postgresql_not_valid=True)",
        (PG,),
    ),
    Silent(
        "add-foreign-key-validating",
        "sql-not-valid",
        'op.execute("ALTER TABLE account ADD CONSTRAINT fk_account_other '
        'FOREIGN KEY (other_id) REFERENCES other (id) NOT VALID")',
        (PG,),
    ),
    Silent(
        "add-foreign-key-validating",
        "checks-off",
        """
        op.execute("SET foreign_key_checks = 0")
        op.create_foreign_key("fk_account_other", "account", "other", ["other_id"], ["id"])
        op.execute("SET foreign_key_checks = 1")
        """,
        (MY,),
    ),
    Silent(
        "add-foreign-key-validating",
        "new-column-sqlite-batch",
        """
        with op.batch_alter_table("account") as batch:
            batch.add_column(
                sa.Column(
                    "other2_id", sa.Integer(), sa.ForeignKey("other.id", name="fk_account_other2")
                )
            )
        """,
        (SQLITE,),
    ),
    Silent(
        "add-foreign-key-validating",
        "created-here",
        CREATE_FRESH
        + 'op.add_column("fresh", sa.Column("other_id", sa.Integer()))\n'
        + 'op.create_foreign_key("fk_fresh_other", "fresh", "other", ["other_id"], ["id"])',
        (PG, MY),
    ),
    Silent(
        "add-unique-constraint",
        "using-index",
        """
        with op.get_context().autocommit_block():
            op.create_index(
                "uq_account_email", "account", ["email"], unique=True,
                postgresql_concurrently=True,
            )
        op.execute(
            "ALTER TABLE account ADD CONSTRAINT uq_account_email "
            "UNIQUE USING INDEX uq_account_email"
        )
        """,
        (PG,),
    ),
    Silent(
        "add-unique-constraint",
        "mysql-online",
        'op.create_unique_constraint("uq_account_email", "account", ["email"])',
        (MY,),
    ),
    Silent(
        "data-change-in-schema-migration",
        "seed-created-here",
        """
        fresh = op.create_table("fresh", sa.Column("id", sa.Integer(), primary_key=True))
        op.bulk_insert(fresh, [{"id": 1}, {"id": 2}])
        op.execute("INSERT INTO fresh (id) VALUES (3)")
        op.execute(sa.insert(sa.table("fresh", sa.column("id"))).values(id=4))
        """,
        ALL,
    ),
    Silent(
        "data-change-in-schema-migration",
        "seed-created-here-beside-ddl",
        """
        fresh = op.create_table("fresh", sa.Column("id", sa.Integer(), primary_key=True))
        op.bulk_insert(fresh, [{"id": 1}])
        op.execute("INSERT INTO fresh (id) VALUES (2)")
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        ALL,
    ),
    Silent(
        "data-change-in-schema-migration",
        "data-only",
        """
        op.execute("UPDATE account SET email = NULL WHERE email = ''")
        op.execute(sa.delete(sa.table("legacy")))
        """,
        ALL,
    ),
    Silent("raw-sql", "parsed", 'op.execute("UPDATE account SET email = NULL")', ALL),
    Silent(
        "raw-sql",
        "comment",
        "op.execute(\"COMMENT ON TABLE account IS 'the accounts'\")",
        (PG,),
    ),
    Silent(
        "no-lock-timeout",
        "set-to",
        "op.execute(\"SET lock_timeout TO '2s'\")\n"
        'op.add_column("account", sa.Column("nick", sa.String(20)))',
        (PG,),
    ),
    Silent(
        "no-lock-timeout",
        "set-config",
        "op.execute(\"SELECT set_config('lock_timeout', '2s', true)\")\n"
        'op.add_column("account", sa.Column("nick", sa.String(20)))',
        (PG,),
    ),
    Silent("no-lock-timeout", "created-here", CREATE_FRESH, (PG,)),
    Silent(
        "no-lock-timeout",
        "set-local",
        "op.execute(\"SET LOCAL lock_timeout = '5s'\")\n"
        'op.add_column("account", sa.Column("nick", sa.String(20)))',
        (PG,),
    ),
    Silent(
        "no-lock-timeout",
        "session-set-outlives-the-block",
        """
        op.execute("SET lock_timeout = '5s'")
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_account_email", "account", ["email"], postgresql_concurrently=True
            )
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        (PG,),
    ),
    Silent(
        "no-lock-timeout",
        "set-local-again-after-the-block",
        """
        op.execute("SET lock_timeout = '5s'")
        with op.get_context().autocommit_block():
            op.execute("SET lock_timeout = '3s'")
        op.execute("SET LOCAL lock_timeout = '5s'")
        op.add_column("account", sa.Column("nick", sa.String(20)))
        """,
        (PG,),
    ),
    Silent(
        "no-lock-timeout",
        "not-postgresql",
        'op.add_column("account", sa.Column("nick", sa.String(20)))',
        (SQLITE, MY),
    ),
]


def fire_params() -> list[object]:
    return [
        pytest.param(case, on, id=f"{case.rule}-{case.name}-{on}")
        for case in FIRES
        for on in case.on
    ]


def silent_params() -> list[object]:
    return [
        pytest.param(case, on, id=f"{case.rule}-{case.name}-{on}")
        for case in SILENT
        for on in case.on
    ]


@pytest.mark.parametrize(("case", "on"), fire_params())
def test_rule_fires_and_is_accepted(
    make_app: MakeApp, make_url: MakeURL, case: Case, on: str
) -> None:
    """The rule fires on the revision, with its severity, bind, revision and a message
    naming what it touches; the same revision with ``lint_allow`` has it accepted."""
    app, alembic, folder = project(make_app, make_url, on)
    upgrade = body(case.upgrade, on, guard=case.rule != "no-lock-timeout")
    path = write(folder, "r1", "r0", upgrade)
    reason = f"accepted for the test of {case.rule}"
    write(folder, "r2", "r1", upgrade, allow={case.rule: reason})

    found = lint(app, alembic, "r1", "r2")
    first = [f for f in found if f.revision == "r1"]
    assert rules(first) == sorted([case.rule, *case.also])
    (finding,) = [f for f in first if f.rule == case.rule]
    assert finding.severity == RULES[case.rule].severity
    assert finding.bind == "default"
    assert finding.path == str(path)
    assert not finding.accepted
    assert finding.reason is None
    assert finding.fix == RULES[case.rule].fix_for(on)
    for name in case.names:
        assert name in finding.message, finding.message

    second = [f for f in found if f.revision == "r2"]
    assert rules(second) == rules(first)  # nothing else, no unused-allow
    (accepted,) = [f for f in second if f.rule == case.rule]
    assert accepted.accepted
    assert accepted.reason == reason
    assert accepted.message == finding.message
    assert not any(f.accepted for f in second if f.rule != case.rule)


def elsewhere_params() -> list[object]:
    return [
        pytest.param(case, on, id=f"{case.rule}-{case.name}-{on}")
        for case in FIRES
        for on in ALL
        if not RULES[case.rule].applies_to(on)
    ]


@pytest.mark.parametrize(("case", "on"), elsewhere_params())
def test_rule_silent_where_it_does_not_apply(
    make_app: MakeApp, make_url: MakeURL, case: Case, on: str
) -> None:
    """A rule of some dialects never fires on the others, whatever the revision does
    there (a SQLite development database linting what PostgreSQL runs in production)."""
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", body(case.upgrade, on))
    assert case.rule not in rules(lint(app, alembic, "r1"))


@pytest.mark.parametrize(("case", "on"), silent_params())
def test_rule_stays_silent(make_app: MakeApp, make_url: MakeURL, case: Silent, on: str) -> None:
    """The safe way of doing the change makes no finding at all."""
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", body(case.upgrade, on))
    assert lint(app, alembic, "r1") == []


def test_concurrently_without_transactional_ddl(make_app: MakeApp, make_url: MakeURL) -> None:
    """With transactional_ddl off, migrations run outside a transaction: CONCURRENTLY
    needs no autocommit_block()."""
    app, alembic = make_app(make_url(PG), ALEMBIC_CONTEXT={"transactional_ddl": False})
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(
        folder,
        "r1",
        "r0",
        GUARD + 'op.create_index("ix_account_email", "account", ["email"], '
        "postgresql_concurrently=True)",
    )
    assert lint(app, alembic, "r1") == []


def test_every_rule_has_a_case() -> None:
    """Every rule but the linter's own notes has a firing revision on each dialect it
    applies to (the others are tested below, one by one)."""
    own = {"missing-downgrade", "offline-failure", "unused-allow", "invalid-allow"}
    for rule in RULES.values():
        if rule.id in own:
            continue
        fired_on = {on for case in FIRES if case.rule == rule.id for on in case.on}
        expected = {on for on in ALL if rule.applies_to(on)}
        assert fired_on == expected, rule.id


# -- missing-downgrade ------------------------------------------------------------------

EMPTY_DOWNGRADES = {
    "pass": "pass",
    "docstring": '"""Nothing to undo."""',
    "ellipsis": "...",
    "docstring-and-pass": '"""Nothing."""\npass',
    "return": "return",
}


@pytest.mark.parametrize("on", ALL)
@pytest.mark.parametrize("downgrade", EMPTY_DOWNGRADES.values(), ids=EMPTY_DOWNGRADES.keys())
def test_missing_downgrade_fires(
    make_app: MakeApp, make_url: MakeURL, on: str, downgrade: str
) -> None:
    """A downgrade() whose body is only pass, ``...``, a docstring or a bare return."""
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", body(CREATE_FRESH, on), downgrade=downgrade)
    write(
        folder,
        "r2",
        "r1",
        body(CREATE_FRESH, on),
        downgrade=downgrade,
        allow={"missing-downgrade": "data only moves forward"},
    )
    (finding, accepted) = lint(app, alembic, "r1", "r2")
    assert (finding.rule, finding.severity, finding.revision) == (
        "missing-downgrade",
        "warning",
        "r1",
    )
    assert not finding.accepted
    assert "downgrade()" in finding.message
    assert (accepted.rule, accepted.revision, accepted.accepted) == (
        "missing-downgrade",
        "r2",
        True,
    )
    assert accepted.reason == "data only moves forward"


def test_missing_downgrade_silent_when_upgrade_does_nothing(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """A merge revision, or an empty one, has nothing to undo."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", CREATE_FRESH)
    write(folder, "r2", "r0", 'op.create_table("other2", sa.Column("id", sa.Integer()))')
    write(folder, "r3", ("r1", "r2"), "pass", downgrade="pass")
    write(folder, "r4", "r3", '"""Nothing yet."""', downgrade="pass")
    assert lint(app, alembic, "r3", "r4") == []


def test_missing_downgrade_without_a_function(make_app: MakeApp, make_url: MakeURL) -> None:
    """A revision file with no downgrade() at all."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    (folder / "r1_test.py").write_text(
        "from alembic import op\nimport sqlalchemy as sa\nrevision = 'r1'\n"
        f"down_revision = 'r0'\ndef upgrade():\n    {CREATE_FRESH}"
    )
    assert rules(lint(app, alembic, "r1")) == ["missing-downgrade"]


@pytest.mark.parametrize(
    "downgrade",
    [
        'raise NotImplementedError("the rows are gone")',
        'op.drop_table("fresh")',
        'if False:\n    pass\nop.drop_table("fresh")',
    ],
    ids=["raises", "undoes", "undoes-after-a-branch"],
)
def test_missing_downgrade_silent(make_app: MakeApp, make_url: MakeURL, downgrade: str) -> None:
    """A downgrade() that says why it cannot undo, or does undo."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", CREATE_FRESH, downgrade=downgrade)
    assert lint(app, alembic, "r1") == []


# -- offline-failure ----------------------------------------------------------------------

FAILURES = {
    "reads-the-database": 'op.get_bind().execute(sa.text("SELECT count(*) FROM account"))',
    "selects": 'op.get_bind().execute(sa.select(sa.table("account", sa.column("id"))))',
    "inspects": "sa.inspect(op.get_bind()).get_table_names()",
    "scalar": 'op.get_bind().scalar(sa.text("SELECT max(id) FROM account"))',
    "raises": 'raise RuntimeError("boom")',
}


@pytest.mark.parametrize("on", ALL)
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_offline_failure_keeps_what_was_seen_before(
    make_app: MakeApp, make_url: MakeURL, on: str, failure: str
) -> None:
    """A revision that cannot run offline is reported, with the findings of what it did
    before it failed; what it would do after is not guessed."""
    app, alembic, folder = project(make_app, make_url, on)
    upgrade = body(f'op.drop_column("account", "name")\n{failure}\nop.drop_table("legacy")', on)
    write(folder, "r1", "r0", upgrade)
    write(folder, "r2", "r1", upgrade, allow={"offline-failure": "reviewed: counts rows"})
    write(folder, "r3", "r2", CREATE_FRESH)
    found = lint(app, alembic, "r1", "r2", "r3")
    first = [f for f in found if f.revision == "r1"]
    assert rules(first) == ["drop-column", "offline-failure"]
    (failed,) = [f for f in first if f.rule == "offline-failure"]
    assert failed.severity == "warning"
    assert not failed.accepted
    if "raise" in failure:
        assert "RuntimeError" in failed.message
        assert "boom" in failed.message
    else:
        assert "op.get_bind()" in failed.message
        assert "offline mode cannot" in failed.message
    second = {f.rule: f for f in found if f.revision == "r2"}
    assert second["offline-failure"].accepted
    assert second["offline-failure"].reason == "reviewed: counts rows"
    assert not second["drop-column"].accepted
    # The next revision is linted as usual.
    assert [f for f in found if f.revision == "r3"] == []


# -- lint_allow itself --------------------------------------------------------------------


@pytest.mark.parametrize("on", ALL)
def test_unused_allow(make_app: MakeApp, make_url: MakeURL, on: str) -> None:
    """An entry for a rule that fires on no dialect is reported, and hides nothing."""
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", body(CREATE_FRESH, on), allow={"drop-table": "old habit"})
    (finding,) = lint(app, alembic, "r1")
    assert (finding.rule, finding.severity, finding.accepted) == ("unused-allow", "warning", False)
    assert "'drop-table'" in finding.message


@pytest.mark.parametrize(
    ("on", "upgrade", "allowed"),
    [
        # SQLite in development, PostgreSQL in production: the index blocks there.
        (
            SQLITE,
            'op.create_index("ix_account_email", "account", ["email"])',
            "create-index-blocking",
        ),
        # MariaDB in development: a plain index is online there, not on PostgreSQL.
        (MY, 'op.create_index("ix_account_email", "account", ["email"])', "create-index-blocking"),
        (
            SQLITE,
            'op.alter_column("account", "name", nullable=False, existing_type=sa.String(50))',
            "set-not-null",
        ),
        (SQLITE, 'op.add_column("account", sa.Column("nick", sa.String(20)))', "no-lock-timeout"),
    ],
    ids=["index-sqlite", "index-mariadb", "not-null-sqlite", "lock-timeout-sqlite"],
)
def test_allow_for_another_dialect_is_not_unused(
    make_app: MakeApp, make_url: MakeURL, on: str, upgrade: str, allowed: str
) -> None:
    """A revision written for several dialects accepts what fires on another one: the
    entry is not reported as unused where the change is safe."""
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", upgrade, allow={allowed: "PostgreSQL in production: quiet hours"})
    assert lint(app, alembic, "r1") == []


def test_allow_unused_on_every_dialect_is_reported(make_app: MakeApp, make_url: MakeURL) -> None:
    """An index built concurrently blocks on no dialect: accepting it is reported."""
    app, alembic, folder = project(make_app, make_url, PG)
    upgrade = body(
        """
        with op.get_context().autocommit_block():
            op.create_index("ix_account_email", "account", ["email"], postgresql_concurrently=True)
        """,
        PG,
    )
    write(folder, "r1", "r0", upgrade, allow={"create-index-blocking": "was blocking"})
    (finding,) = lint(app, alembic, "r1")
    assert finding.rule == "unused-allow"
    assert "'create-index-blocking'" in finding.message


INVALID = {
    "unknown-rule": ('{"drop-tables": "typo"}', "'drop-tables'"),
    "empty-reason": ('{"drop-table": "  "}', "'drop-table'"),
    "reason-not-text": ('{"drop-table": True}', "'drop-table'"),
    "not-a-dict": ('["drop-table"]', "list"),
    "own-note": ('{"unused-allow": "quiet"}', "'unused-allow'"),
}


@pytest.mark.parametrize(("allow", "named"), INVALID.values(), ids=INVALID.keys())
def test_invalid_allow(make_app: MakeApp, make_url: MakeURL, allow: str, named: str) -> None:
    """A lint_allow that is not a dict of rule ids to reasons is reported, and accepts
    nothing: the finding it meant to accept stays open."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", 'op.drop_table("legacy")', raw_allow=f"lint_allow = {allow}")
    found = lint(app, alembic, "r1")
    assert rules(found) == ["drop-table", "invalid-allow"]
    (invalid,) = [f for f in found if f.rule == "invalid-allow"]
    assert invalid.severity == "warning"
    assert named in invalid.message
    assert not any(f.accepted for f in found)


# -- which revisions are linted -----------------------------------------------------------


def test_lint_all_named_and_pending(make_app: MakeApp, database_url: str) -> None:
    """all=True lints every revision; named ones lint those; by default, those not yet
    applied."""
    app, alembic = make_app(database_url)
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(folder, "r1", "r0", 'op.drop_column("account", "email")')
    write(folder, "r2", "r1", 'op.drop_table("legacy")')
    with app.app_context():
        everything = alembic.lint(all=True)
        assert [rev for _, rev in everything.linted] == ["r0", "r1", "r2"]
        assert [(f.revision, f.rule) for f in everything.open(("error",))] == [
            ("r1", "drop-column"),
            ("r2", "drop-table"),
        ]
        named = alembic.lint("r2")
        assert named.linted == (("default", "r2"),)
        assert [f.rule for f in named.open(("error",))] == ["drop-table"]
        (finding,) = [f for f in named.of("default", "r2") if f.rule == "drop-table"]
        assert finding.as_dict() == {
            "bind": "default",
            "revision": "r2",
            "path": str(folder / "r2_test.py"),
            "rule": "drop-table",
            "severity": "error",
            "message": "drops table 'legacy'",
            "fix": RULES["drop-table"].fix,
            "accepted": False,
            "reason": None,
        }

        assert [rev for _, rev in alembic.lint().linted] == ["r0", "r1", "r2"]
        alembic.upgrade("r1")
        pending = alembic.lint()
        assert pending.linted == (("default", "r2"),)
        assert [f.rule for f in pending.open(("error",))] == ["drop-table"]
        alembic.upgrade()
        assert alembic.lint().linted == ()


def test_each_bind_judged_in_its_own_dialect(make_app: MakeApp, make_url: MakeURL) -> None:
    """The same change on a SQLite bind and a PostgreSQL bind: only PostgreSQL's index
    blocks writes, and bind= selects one."""
    urls = {"default": make_url(SQLITE), "analytics": make_url(PG)}
    app, alembic = make_app(urls)
    root = Path(app.root_path) / "migrations"
    with app.app_context():
        firsts = {alembic.bind_of(s): s for s in alembic.revision("init")}
    for name, folder in (("default", root), ("analytics", root / "analytics")):
        write(
            folder,
            f"{name}2",
            firsts[name].revision,
            'op.create_index("ix_user_name", "user", ["name"])\nop.drop_column("user", "name")',
        )
    with app.app_context():
        report = alembic.lint()
        assert {(f.bind, f.revision, f.rule) for f in report.open()} == {
            ("default", "default2", "drop-column"),
            ("analytics", "analytics2", "create-index-blocking"),
            ("analytics", "analytics2", "drop-column"),
            ("analytics", "analytics2", "no-lock-timeout"),
        }
        only = alembic.lint(bind="default")
        assert {f.bind for f in only.findings} == {"default"}
        assert {bind for bind, _ in only.linted} == {"default"}
        fix = [f.fix for f in report.findings if f.rule == "create-index-blocking"]
        assert fix == [RULES["create-index-blocking"].fix_for(PG)]


def test_lint_does_not_connect(make_app: MakeApp, make_url: MakeURL) -> None:
    """Linting named revisions runs offline: a database that does not exist is fine."""
    url = sa.make_url(make_url(PG)).set(database="fa_no_such_database")
    app, alembic = make_app(url.render_as_string(hide_password=False))
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(folder, "r1", "r0", 'op.create_index("ix_account_email", "account", ["email"])')
    assert rules(lint(app, alembic, "r1")) == ["create-index-blocking", "no-lock-timeout"]


def test_mariadb_driver(make_app: MakeApp, make_url: MakeURL) -> None:
    """A ``mariadb+pymysql://`` URL is judged as MariaDB/MySQL."""
    url = sa.make_url(make_url(MY)).set(drivername="mariadb+pymysql")
    app, alembic = make_app(url.render_as_string(hide_password=False))
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(
        folder,
        "r1",
        "r0",
        'op.create_index("ft_account_name", "account", ["name"], mariadb_prefix="FULLTEXT")\n'
        'op.create_index("ix_account_email", "account", ["email"])',
    )
    (finding,) = lint(app, alembic, "r1")
    assert (finding.rule, finding.bind) == ("create-index-blocking", "default")
    assert "'ft_account_name'" in finding.message
    assert finding.fix == RULES["create-index-blocking"].fix_for("mariadb")
    assert finding.fix == RULES["create-index-blocking"].fix_for("mysql")


def test_without_the_parser(
    make_app: MakeApp, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without sqlglot (the lint extra), lint refuses in one line that says what to
    install, rather than judge only the operations and let raw SQL through."""
    from flask_alembic import lint_sql
    from flask_alembic.errors import ConfigurationError

    monkeypatch.setattr(lint_sql, "available", lambda: False)
    app, alembic, folder = project(make_app, make_url, PG)
    write(folder, "r1", "r0", 'op.execute("DROP TABLE legacy")')
    with pytest.raises(ConfigurationError) as caught:
        lint(app, alembic, "r1")
    assert "Flask-Alembic[lint]" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


# -- the parser stays quiet ---------------------------------------------------------------


@pytest.mark.parametrize("on", ALL)
def test_unreadable_sql_makes_no_noise(
    make_app: MakeApp,
    make_url: MakeURL,
    on: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQL the parser falls back on is a raw-sql finding, never a log line."""
    caplog.set_level(logging.DEBUG)
    app, alembic, folder = project(make_app, make_url, on)
    write(
        folder,
        "r1",
        "r0",
        body(
            'op.execute("FROBNICATE account")\nop.execute("VACUUM account")',
            on,
        ),
    )
    found = lint(app, alembic, "r1")
    assert rules(found) == ["raw-sql"] * 2
    assert [r for r in caplog.records if r.name.startswith("sqlglot")] == []
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


# -- the docs page ------------------------------------------------------------------------

DOCS = Path(__file__).parent.parent / "docs" / "lint.md"


def test_docs_list_every_rule_with_its_severity() -> None:
    """docs/lint.md has a section per rule, with its severity, and no rule that is gone."""
    text = DOCS.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `([a-z-]+)`\n\n\*\*([a-z]+)\*\*", text, re.MULTILINE))
    assert sections == {rule.id: rule.severity for rule in RULES.values()}
    names = {"postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL", "sqlite": "SQLite"}
    table = {
        rule: (severity, dialects)
        for rule, severity, dialects in re.findall(
            r"^\| `([a-z-]+)` \| ([a-z]+) \| ([^|]+) \|$", text, re.MULTILINE
        )
    }
    assert table == {
        rule.id: (
            rule.severity,
            ", ".join(names[d] for d in ("postgresql", "mysql", "sqlite") if d in rule.dialects)
            or "all",
        )
        for rule in RULES.values()
    }


# -- reading SQL --------------------------------------------------------------------------

#: (dialect, SQL, the facts read: kind, table, name, online), for what the revision
#: tests above do not go through.
READ = [
    (PG, "UPDATE t SET (", [("unknown", None, None, False)]),
    (PG, "-- only a comment", []),
    (PG, "BEGIN; COMMIT", []),
    (PG, "TRUNCATE a, b", [("data", "a", None, False), ("data", "b", None, False)]),
    (
        PG,
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        [("data", "t", None, False)],
    ),
    (PG, "SET x TO DEFAULT", [("set", None, "x", False)]),
    (PG, "CREATE VIEW v AS SELECT 1", [("create-object", None, "v", False)]),
    (
        PG,
        "CREATE TABLE n (id INT); INSERT INTO n VALUES (1)",
        [("create-table", "n", None, False), ("data", "n", None, False)],
    ),
    (PG, "DROP VIEW v", [("other-ddl", None, None, False)]),
    (PG, "ALTER TABLE t DROP CONSTRAINT fk", [("other-ddl", "t", None, False)]),
    (PG, "ALTER TABLE t SET (fillfactor = 70)", [("other-ddl", "t", None, False)]),
    (PG, "ALTER TABLE t ALTER COLUMN c DROP DEFAULT", [("other-ddl", "t", None, False)]),
    (
        PG,
        "ALTER TABLE t ALTER COLUMN c TYPE BIGINT, ALTER COLUMN d SET NOT NULL",
        [("change-type", "t", "c", False), ("set-not-null", "t", "d", False)],
    ),
    (
        PG,
        "ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0) NOT VALID",
        [("add-check", "t", "ck", True)],
    ),
    (PG, "ALTER TABLE t VALIDATE CONSTRAINT ck", [("other-ddl", "t", None, False)]),
    (
        PG,
        "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX ix",
        [("other-ddl", "t", None, False)],
    ),
    (
        PG,
        "DROP INDEX CONCURRENTLY IF EXISTS public.ix_a",
        [("drop-index", None, "ix_a", True)],
    ),
    (PG, "SELECT set_config('lock_timeout', '2s', false)", [("set", None, "lock_timeout", False)]),
    (
        MY,
        "RENAME TABLE a TO b, `c` TO d",
        [("rename-table", "a", None, False), ("rename-table", "c", None, False)],
    ),
    (MY, "RENAME TABLE a", [("unknown", None, None, False)]),
    (MY, "CREATE UNIQUE FULLTEXT INDEX ft ON t (a)", [("create-index", "t", "ft", False)]),
    (MY, "ALTER TABLE t ADD INDEX ix (a)", [("create-index", "t", "ix", True)]),
    (MY, "ALTER TABLE t ADD SPATIAL INDEX sp (g)", [("create-index", "t", "sp", False)]),
    (
        MY,
        "ALTER TABLE t DROP a, DROP INDEX ix",
        [("drop-column", "t", "a", False), ("other-ddl", "t", None, False)],
    ),
    (MY, "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1", [("other-ddl", "t", None, False)]),
    (MY, "SET SESSION foreign_key_checks = OFF", [("set", None, "foreign_key_checks", False)]),
]


@pytest.mark.parametrize(("on", "sql", "expected"), READ, ids=[r[1][:40] for r in READ])
def test_sql_reading(on: str, sql: str, expected: list[tuple[object, ...]]) -> None:
    """What the SQL reader makes of statements, one by one."""
    from flask_alembic import lint_sql

    with lint_sql.quiet_parser():
        found = lint_sql.facts(sql, on)
    assert [(f.kind, f.table, f.name, f.online) for f in found] == expected


@pytest.mark.parametrize(
    ("sql", "volatile"),
    [
        ("ALTER TABLE t ADD COLUMN g INT GENERATED ALWAYS AS IDENTITY", "an identity column"),
        ("ALTER TABLE t ADD COLUMN r FLOAT DEFAULT random()", "random()"),
        ("ALTER TABLE t ADD COLUMN c INT DEFAULT nextval('s')", "nextval('s')"),
        ("ALTER TABLE t ADD COLUMN c TIMESTAMP DEFAULT now()", None),
        ("ALTER TABLE t ADD COLUMN c JSONB DEFAULT '{}'::jsonb", None),
    ],
)
def test_volatile_defaults_read(sql: str, volatile: str | None) -> None:
    """Which new columns' defaults PostgreSQL computes per row."""
    from flask_alembic import lint_sql

    (fact,) = lint_sql.facts(sql, PG)
    assert (fact.kind, fact.volatile, fact.has_default) == ("add-column", volatile, True)
