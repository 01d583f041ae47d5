"""The ``--json`` objects: one per command, each with its ``version``.

Keys are documented in docs/output.md; a key never changes meaning within a
:data:`JSON_VERSION`. User text is kept as it is (JSON escapes it); only the text forms in
:mod:`.report` escape control characters.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import TYPE_CHECKING

from .errors import DEFAULT_GROUP
from .plan import to_tuple
from .report import describe_diff
from .report import diff_kind

if TYPE_CHECKING:
    from alembic.script import Script

    from .adopt import Adoption
    from .lint import LintReport
    from .plan import MigrationResult
    from .plan import Plan
    from .plan import Step
    from .report import BindOf
    from .status import BindStatus
    from .writer import WrittenRevision

__all__ = [
    "JSON_VERSION",
    "adoption_json",
    "diffs_json",
    "error_json",
    "lint_json",
    "plan_json",
    "result_json",
    "scripts_json",
    "status_json",
    "step_json",
    "written_json",
]

#: Bumped when a key changes meaning or disappears; new keys may appear in any version.
JSON_VERSION = 1


def status_json(statuses: Sequence[BindStatus], group: str = DEFAULT_GROUP) -> dict[str, Any]:
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
                "state": str(s.state),
                "managed": s.managed,
                "reason": s.reason,
                "error": None if s.error is None else s.error.render(group),
            }
            for s in statuses
        ],
    }


def scripts_json(
    scripts: Sequence[Script],
    bind_of: BindOf,
    applied: set[str] | None = None,
    *,
    unknown: Collection[str] = (),
) -> dict[str, Any]:
    """``heads``, ``branches``, ``show``, ``log`` and ``merge`` with ``--json``.

    :param applied: the revisions applied on their databases (``None``: not asked).
    :param unknown: the binds whose applied revisions could not be read: their
        revisions' ``applied`` is ``null``.
    """
    return {
        "version": JSON_VERSION,
        "revisions": [_script_json(script, bind_of, applied, unknown) for script in scripts],
    }


def _script_json(
    script: Script, bind_of: BindOf, applied: set[str] | None, unknown: Collection[str] = ()
) -> dict[str, Any]:
    bind = bind_of(script)
    return {
        "bind": bind,
        "revision": script.revision,
        "down_revisions": list(to_tuple(script.down_revision)),
        "depends_on": list(to_tuple(script.dependencies)),
        "branch_labels": sorted(script.branch_labels),
        "message": script.doc or "",
        "path": script.path,
        "is_head": script.is_head,
        "applied": None if applied is None or bind in unknown else script.revision in applied,
    }


def lint_json(report: LintReport) -> dict[str, Any]:
    """``lint --json``: every finding, accepted ones included, in the order the revisions
    would run."""
    return {
        "version": JSON_VERSION,
        "findings": [finding.as_dict() for finding in report.findings],
    }


def _findings_json(lint: LintReport | None, bind: str, revision: str | None) -> Any:
    """A revision's findings as ``lint --json`` gives them; ``None`` when not linted."""
    if lint is None:
        return None
    if revision is None:
        return []
    return [finding.as_dict() for finding in lint.of(bind, revision)]


def written_json(
    written: Sequence[WrittenRevision],
    skipped: Mapping[str, str],
    bind_of: BindOf,
    lint: LintReport | None = None,
) -> dict[str, Any]:
    """``revision --json``: each file written, what it was generated from and what it
    may lose, and its lint findings (``null`` with ``ALEMBIC_LINT = "off"``); each bind
    not compared, and why."""
    return {
        "version": JSON_VERSION,
        "revisions": [
            {
                **_script_json(item.script, bind_of, None),
                "changes": [_change_json(change) for change in item.changes],
                "losses": list(item.losses),
                "findings": _findings_json(lint, item.bind, item.script.revision),
            }
            for item in written
        ],
        "skipped": [{"bind": bind, "reason": reason} for bind, reason in skipped.items()],
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
        "purge": step.purge,
    }


def plan_json(plan: Plan, lint: LintReport | None = None) -> dict[str, Any]:
    """``--plan --json``; each step of an upgrade has its revision's lint ``findings``
    (``null`` when not linted: a downgrade or stamp, or ``ALEMBIC_LINT = "off"``)."""
    steps = [step_json(step) for step in plan.steps]
    for data, step in zip(steps, plan.steps, strict=True):
        data["findings"] = _findings_json(lint, step.bind, step.revision)
    return {
        "version": JSON_VERSION,
        "direction": plan.direction,
        "steps": steps,
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
                "failed": None if b.failed is None else step_json(b.failed),
                "error": b.error,
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
                "changes": [_change_json(item) for item in items],
            }
            for bind, items in diffs.items()
        ],
        "not_compared": [{"bind": bind, "reason": reason} for bind, reason in skipped.items()],
    }


def _change_json(diff: Any) -> dict[str, str]:
    """One of Alembic's diff entries: its kind and the line that describes it."""
    return {"kind": diff_kind(diff), "description": describe_diff(diff)}


def error_json(message: str, exc: BaseException | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    for field_name in ("bind", "revision", "path"):
        error[field_name] = getattr(exc, field_name, None)
    return {"version": JSON_VERSION, "error": error}


def adoption_json(adoption: Adoption, group: str = DEFAULT_GROUP) -> dict[str, Any]:
    """``adopt --json``: the settings keyed by name, with what was read and checked."""
    layout = adoption.layout
    return {
        "version": JSON_VERSION,
        "layout": {
            "kind": str(layout.kind),
            "script_location": str(layout.script_location),
            "revisions": str(layout.revisions),
            "alembic_ini": None if layout.ini is None else str(layout.ini),
            "env_py": None if layout.env is None else str(layout.env),
        },
        "settings": dict(adoption.settings),
        "configured": adoption.configured,
        "read": [
            {"setting": o.setting, "value": o.value, "source": o.source} for o in adoption.read
        ],
        "notes": list(adoption.notes),
        "before": [
            {
                "bind": row.bind,
                "version_table": row.version_table,
                "current": list(row.rows),
            }
            for row in adoption.before
        ],
        "files": [
            {
                "action": f.action,
                "path": str(f.path),
                "bind": f.bind,
                "revision": f.revision,
                "from": f.old if f.action == "write" else None,
                "to": f.old if f.action == "archive" else None,
            }
            for f in adoption.files
        ],
        "stamps": [
            {
                "bind": s.bind,
                "version_table": s.version_table,
                "from": list(s.old),
                "to": list(s.new),
                "done": s.done,
            }
            for s in adoption.stamps
        ],
        "after": None if adoption.after is None else status_json(adoption.after, group)["binds"],
        "planned": adoption.planned,
    }
