"""The catalogue of lint rules: each rule's id, severity, dialects, reason and safe recipe.

The ids are stable: revision files name them in ``lint_allow``, and ``--json`` readers
match on them. ``docs/lint.md`` is checked against this catalogue by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Literal

__all__ = ["RULES", "SEVERITIES", "Rule", "Severity", "family"]

Severity = Literal["error", "warning", "info"]

#: From the most to the least serious.
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


def family(dialect_name: str) -> str:
    """The rules' name for a SQLAlchemy dialect: MariaDB and MySQL share ``mysql``."""
    return "mysql" if dialect_name in {"mysql", "mariadb"} else dialect_name


@dataclass(frozen=True)
class Rule:
    """One thing the linter looks for."""

    id: str
    severity: Severity
    #: Why the change is unsafe, in one line.
    reason: str
    #: The safe way to make the same change.
    fix: str
    #: The dialect families it applies to (``postgresql``, ``mysql``, ``sqlite``); empty:
    #: every dialect.
    dialects: frozenset[str] = frozenset()
    #: A fix of its own for some dialect families.
    fixes: Mapping[str, str] = field(default_factory=dict)
    #: A reason of its own for some dialect families (what happens there).
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: Whether ``lint_allow`` may accept it (the linter's notes on ``lint_allow`` itself
    #: may not be accepted with ``lint_allow``).
    acceptable: bool = True

    def applies_to(self, dialect: str) -> bool:
        return not self.dialects or family(dialect) in self.dialects

    def fix_for(self, dialect: str) -> str:
        return self.fixes.get(family(dialect), self.fix)

    def reason_for(self, dialect: str) -> str:
        return self.reasons.get(family(dialect), self.reason)


_PG = frozenset({"postgresql"})
_PG_MYSQL = frozenset({"postgresql", "mysql"})

_CATALOGUE = (
    Rule(
        "drop-table",
        "error",
        "Dropping a table deletes its rows for good, and the release still running may "
        "still read or write it.",
        "Stop using the table in one release; drop it in a later one, once no running code "
        "touches it and a backup holds its rows.",
    ),
    Rule(
        "drop-column",
        "error",
        "Dropping a column deletes its data, and the release still running selects it "
        "(SQLAlchemy names every mapped column) until the new code is out.",
        "Remove the column from the models and deploy that first; drop the column in a "
        "later release.",
    ),
    Rule(
        "rename-table",
        "error",
        "The release still running uses the old name, and fails from the moment the "
        "rename commits.",
        "Create the new table, write to both, move the readers over, then drop the old "
        "one in a later release (or leave a view with the old name in between).",
    ),
    Rule(
        "rename-column",
        "error",
        "The release still running uses the old name, and fails from the moment the "
        "rename commits.",
        "Add the new column, write to both and copy the old values across in batches, "
        "switch the readers, then drop the old column in a later release.",
    ),
    Rule(
        "change-column-type",
        "error",
        "Most type changes rewrite the whole table under a lock that blocks reads and "
        "writes, and fail part way on a value the new type cannot hold.",
        "Add a column of the new type, fill it in batches, switch the code to it, then "
        "drop the old column in a later release.",
        reasons={
            "postgresql": "The table and its indexes are rewritten under an ACCESS EXCLUSIVE "
            "lock (no reads, no writes) until the rewrite ends; a value the new type cannot "
            "hold fails the whole statement.",
            "mysql": "MariaDB and MySQL copy the table (ALGORITHM=COPY) for most type changes, "
            "blocking writes until the copy ends; only a VARCHAR made longer within the same "
            "length prefix (up to 255 bytes, or from 256 on) changes in place.",
            "sqlite": "SQLite cannot change a column's type: batch mode copies the table into "
            "a new one, and the old release sees the new type at once.",
        },
        fixes={
            "postgresql": "Add a column of the new type, fill it in batches, switch the code "
            "to it, then drop the old column in a later release. Making a VARCHAR longer, "
            "or turning it into TEXT, needs no rewrite and is not reported.",
        },
    ),
    Rule(
        "add-not-null-column",
        "error",
        "A NOT NULL column without a server default cannot be added to a table that has "
        "rows: the statement fails, or the table is rewritten to fill it.",
        "Give the column a server_default, or add it nullable, fill it in batches, and "
        "make it NOT NULL in a later revision.",
        reasons={
            "postgresql": "PostgreSQL refuses the statement on a table that has rows (the new "
            "column would hold NULLs).",
            "mysql": "MariaDB and MySQL fill the existing rows with the type's implicit default "
            "(0, '', a zero date), silently, and SQLAlchemy's Python-side default= is never used "
            "for them.",
            "sqlite": "SQLite refuses to add a NOT NULL column without a default, rows or not.",
        },
    ),
    Rule(
        "set-not-null",
        "error",
        "Making a column NOT NULL reads the whole table while holding a lock that blocks "
        "every query on it.",
        "Check for NULLs before, and make the change at a quiet time.",
        dialects=_PG_MYSQL,
        reasons={
            "postgresql": "SET NOT NULL reads the whole table to check it while holding an "
            "ACCESS EXCLUSIVE lock, which blocks every query on the table.",
            "mysql": "MariaDB and MySQL rebuild the whole table, and fail on the first NULL "
            "(or, outside strict mode, silently replace NULLs with the type's default).",
        },
        fixes={
            "postgresql": "Add CHECK (column IS NOT NULL) NOT VALID, run VALIDATE CONSTRAINT "
            "in a later revision (it lets writes through), then SET NOT NULL: PostgreSQL 12 "
            "and later trust the valid check and skip the scan. Drop the check afterwards.",
            "mysql": "Fill the NULLs in batches first; the change rebuilds the table, so run "
            "it at a quiet time or with an online schema change tool (gh-ost, "
            "pt-online-schema-change).",
        },
    ),
    Rule(
        "add-column-volatile-default",
        "warning",
        "A default that is computed for each row (random(), gen_random_uuid(), "
        "clock_timestamp(), a function PostgreSQL must assume volatile, a serial or identity "
        "column) makes PostgreSQL rewrite the whole table under an exclusive lock.",
        "Add the column without a default (or with a constant one), set the default in a "
        "second statement so new rows get it, and fill the existing rows in batches.",
        dialects=_PG,
    ),
    Rule(
        "create-index-blocking",
        "error",
        "Building an index this way blocks writes to the table until the index is built.",
        "Build it without blocking writes.",
        dialects=_PG_MYSQL,
        reasons={
            "postgresql": "CREATE INDEX without CONCURRENTLY holds a SHARE lock: every insert, "
            "update and delete on the table waits until the whole index is built.",
            "mysql": "A FULLTEXT or SPATIAL index cannot be built with LOCK=NONE: writes wait "
            "until it is built, and the first FULLTEXT index of a table rebuilds the table. "
            "(Other indexes are built online by InnoDB and are not reported.)",
        },
        fixes={
            "postgresql": "Pass postgresql_concurrently=True to op.create_index(), inside "
            "`with op.get_context().autocommit_block():` (CREATE INDEX CONCURRENTLY cannot run "
            "in a transaction).",
            "mysql": "A FULLTEXT or SPATIAL index cannot be built with LOCK=NONE (the first "
            "FULLTEXT index also copies the table): build it at a quiet time, or with an "
            "online schema change tool (gh-ost, pt-online-schema-change).",
        },
    ),
    Rule(
        "concurrently-in-transaction",
        "error",
        "PostgreSQL refuses CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY inside a "
        "transaction block, and each migration runs in one: the upgrade fails at this step.",
        "Run it inside `with op.get_context().autocommit_block():`. A concurrent build that "
        "fails leaves an INVALID index behind: drop it (DROP INDEX CONCURRENTLY IF EXISTS) "
        "before trying again.",
        dialects=_PG,
    ),
    Rule(
        "drop-index-blocking",
        "error",
        "DROP INDEX takes an exclusive lock on the table, blocking reads and writes while "
        "it waits and runs.",
        "Pass postgresql_concurrently=True to op.drop_index(), inside "
        "`with op.get_context().autocommit_block():`.",
        dialects=_PG,
    ),
    Rule(
        "add-foreign-key-validating",
        "error",
        "Adding a foreign key checks every existing row while holding a lock that blocks "
        "writes to both tables.",
        "Add it with postgresql_not_valid=True (new rows are checked at once), then run "
        "ALTER TABLE ... VALIDATE CONSTRAINT in a later revision, which lets writes through.",
        dialects=_PG_MYSQL,
        reasons={
            "postgresql": "ADD FOREIGN KEY checks every existing row while holding SHARE ROW "
            "EXCLUSIVE locks on both tables, which block their writes.",
            "mysql": "With foreign_key_checks on, MariaDB and MySQL add a foreign key by "
            "copying the table (ALGORITHM=COPY), blocking writes to it until the copy ends.",
        },
        fixes={
            "mysql": "Look for orphan rows first (a LEFT JOIN), then run "
            'op.execute("SET foreign_key_checks = 0") before op.create_foreign_key() and '
            'op.execute("SET foreign_key_checks = 1") after it: the key is added in place, '
            "without a copy (and without checking the existing rows).",
        },
    ),
    Rule(
        "add-check-constraint-validating",
        "error",
        "Adding a CHECK constraint reads every existing row while holding an ACCESS "
        "EXCLUSIVE lock, which blocks every query on the table.",
        "Add it with postgresql_not_valid=True (new rows are checked at once), then run "
        "ALTER TABLE ... VALIDATE CONSTRAINT in a later revision, which lets reads and "
        "writes through.",
        dialects=_PG,
    ),
    Rule(
        "add-unique-constraint",
        "error",
        "Adding a UNIQUE constraint or a primary key builds its index while blocking writes "
        "to the table.",
        "Build a unique index with postgresql_concurrently=True first (in an "
        "autocommit_block()), then add the constraint on it: "
        "ALTER TABLE t ADD CONSTRAINT name UNIQUE USING INDEX index_name "
        "(or PRIMARY KEY USING INDEX).",
        dialects=_PG,
    ),
    Rule(
        "data-change-in-schema-migration",
        "warning",
        "Changing rows in a revision that also changes the schema holds the schema's locks "
        "for as long as the rows take, and a failure undoes both (on MariaDB and MySQL, "
        "whose DDL commits at once, it leaves half).",
        "Move the UPDATE, DELETE or INSERT into a revision of its own, or into a job that "
        "works in batches.",
    ),
    Rule(
        "raw-sql",
        "info",
        "This SQL could not be analysed, so no rule has checked it.",
        "Review it by hand; where Alembic has an operation for it, the operation can be checked.",
    ),
    Rule(
        "missing-downgrade",
        "warning",
        "downgrade() does nothing, so a downgrade past this revision only moves the version table.",
        "Write the reverse operations, or make downgrade() raise an error that says why "
        "the revision cannot be undone.",
    ),
    Rule(
        "no-lock-timeout",
        "warning",
        "A DDL statement waiting for its lock makes every later query on the table wait "
        "behind it: without a lock timeout, one long transaction stalls the table.",
        "Set ALEMBIC_BINDS[name]['timeouts'] = {'lock_timeout': 5} (seconds), or a "
        "revision's own `timeouts = {'lock_timeout': 5}`, or run "
        "op.execute(\"SET LOCAL lock_timeout = '5s'\") before the DDL. An autocommit_block() "
        "ends the step's transaction: the bind's and the revision's timeouts are set again "
        "after it, a SET LOCAL of the revision's own is not (run it again after the block).",
        dialects=_PG,
    ),
    Rule(
        "offline-failure",
        "warning",
        "The revision raised an error when run in offline mode, so what it does after that "
        "point has not been analysed.",
        "Code that reads the database (op.get_bind().execute(...)) cannot run offline: "
        "review that part by hand, then accept the finding with a reason. An operation the "
        "dialect does not support fails when run too: fix the revision.",
    ),
    Rule(
        "unused-allow",
        "warning",
        "lint_allow accepts a rule that no longer fires in this revision, and would hide it "
        "if the revision changed to fire it again.",
        "Remove the entry from lint_allow.",
        acceptable=False,
    ),
    Rule(
        "invalid-allow",
        "warning",
        "lint_allow must be a dict of rule ids to non-empty reasons, naming rules that exist.",
        'Write it as lint_allow = {"drop-column": "unused since 2.3"}.',
        acceptable=False,
    ),
)

#: Every rule, by id, in the order the docs list them.
RULES: dict[str, Rule] = {rule.id: rule for rule in _CATALOGUE}
