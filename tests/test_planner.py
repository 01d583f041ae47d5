"""The planner is pure: revision maps built in memory, no database, no files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.script.revision import Revision
from alembic.script.revision import RevisionMap

from flask_alembic import history as histories
from flask_alembic import plan as plans
from flask_alembic import planner
from flask_alembic.errors import AmbiguousTargetError
from flask_alembic.errors import MultipleHeadsError
from flask_alembic.errors import PlanError
from flask_alembic.errors import RevisionError
from flask_alembic.history import BindHistory


def history(
    name: str,
    *revisions: tuple[str, str | tuple[str, ...] | None],
    foreign: dict[str, tuple[tuple[str, str], ...]] | None = None,
) -> BindHistory:
    """A bind's history from ``(revision, down_revision)`` pairs."""
    revs = [Revision(rev, down) for rev, down in revisions]
    return BindHistory(name, RevisionMap(lambda: iter(revs)), foreign or {})


def ids(plan: plans.Plan) -> list[tuple[str, str | None]]:
    return [(step.bind, step.revision) for step in plan.steps]


LINEAR = history("default", ("a1", None), ("a2", "a1"), ("a3", "a2"))


def test_planner_imports_no_io() -> None:
    """planner.py imports nothing from flask, click, rich or sqlalchemy.engine."""
    tree = ast.parse(Path(planner.__file__).read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    banned = ("flask", "click", "rich", "sqlalchemy")
    assert not [m for m in modules if m.split(".")[0] in banned]


def test_upgrade_from_base() -> None:
    """Upgrading an empty database plans every revision, oldest first."""
    plan = planner.plan_migration("upgrade", [LINEAR], {"default": ()}, {"default": "heads"})
    assert ids(plan) == [("default", "a1"), ("default", "a2"), ("default", "a3")]
    assert plan.steps[0].source == ()
    assert plan.steps[1].source == ("a1",)
    assert plan.start == {"default": ()}


def test_upgrade_up_to_date_is_empty() -> None:
    """A bind at its head has nothing to do and is listed as unchanged."""
    plan = planner.plan_migration("upgrade", [LINEAR], {"default": ("a3",)}, {"default": "heads"})
    assert not plan
    assert plan.unchanged == ("default",)


def test_downgrade_order() -> None:
    """Downgrades run newest first."""
    plan = planner.plan_migration("downgrade", [LINEAR], {"default": ("a3",)}, {"default": "a1"})
    assert ids(plan) == [("default", "a3"), ("default", "a2")]
    assert plan.steps[0].destination == ("a2",)


def test_unknown_current_revision() -> None:
    """A version table naming a revision the scripts lack is an error suggesting stamp."""
    with pytest.raises(RevisionError, match=r"'default' is at revision 'zz'.*stamp"):
        planner.plan_migration("upgrade", [LINEAR], {"default": ("zz",)}, {"default": "heads"})


def test_multiple_heads_need_merge() -> None:
    """'head' in a bind with two heads names them and suggests merge."""
    forked = history("default", ("a1", None), ("b1", "a1"), ("b2", "a1"))
    with pytest.raises(MultipleHeadsError, match="flask db merge --bind default"):
        planner.plan_migration("upgrade", [forked], {"default": ()}, {"default": "head"})
    plan = planner.plan_migration("upgrade", [forked], {"default": ()}, {"default": "heads"})
    assert {rev for _, rev in ids(plan)} == {"a1", "b1", "b2"}


def test_resolve_targets() -> None:
    """Targets resolve to the bind that owns them."""
    other = history("analytics", ("c1", None), ("c2", "c1"))
    both = [LINEAR, other]
    assert histories.resolve_target("heads", both, direction="upgrade") == {
        "default": "heads",
        "analytics": "heads",
    }
    assert histories.resolve_target("c2", both, direction="upgrade") == {"analytics": "c2"}
    assert histories.resolve_target("analytics@head", both, direction="upgrade") == {
        "analytics": "head"
    }
    assert histories.resolve_target("analytics@+1", both, direction="upgrade") == {
        "analytics": "+1"
    }
    assert histories.resolve_target("+1", [other], direction="upgrade") == {"analytics": "+1"}
    assert histories.resolve_target(2, [other], direction="upgrade") == {"analytics": "+2"}
    assert histories.resolve_target("2", [other], direction="downgrade") == {"analytics": "-2"}


def test_relative_target_with_several_binds() -> None:
    """+1 with two binds selected is refused with the fix."""
    other = history("analytics", ("c1", None))
    with pytest.raises(AmbiguousTargetError, match="--bind default"):
        histories.resolve_target("+1", [LINEAR, other], direction="upgrade")


def test_numeric_revision_id_is_an_id() -> None:
    """A numeric string equal to a revision id is that revision, not a count."""
    numeric = history("default", ("1795310866", None), ("2000", "1795310866"))
    assert histories.resolve_target("1795310866", [numeric], direction="upgrade") == {
        "default": "1795310866"
    }
    assert histories.resolve_target(1795310866, [numeric], direction="upgrade") == {
        "default": "1795310866"
    }
    # Short numbers are counts unless a revision has exactly that id.
    assert histories.resolve_target("1", [numeric], direction="upgrade") == {"default": "+1"}
    assert histories.resolve_target("2000", [numeric], direction="upgrade") == {"default": "2000"}


def test_unknown_and_ambiguous_revisions() -> None:
    """Unknown ids and prefixes matching several revisions are errors naming them."""
    twins = history("default", ("abcd1", None), ("abcd2", "abcd1"))
    with pytest.raises(RevisionError, match="Unknown revision 'nope'"):
        histories.resolve_target("nope", [twins], direction="upgrade")
    with pytest.raises(RevisionError, match="ambiguous"):
        histories.resolve_target("abcd", [twins], direction="upgrade")
    x = history("x", ("abcd1", None))
    other = history("analytics", ("abcd9", None))
    with pytest.raises(RevisionError, match="matches revisions in binds x, analytics"):
        histories.resolve_target("abcd", [LINEAR, x, other], direction="upgrade")


def test_cross_bind_dependency_orders_steps() -> None:
    """A revision depending on another bind's revision runs after it."""
    default = history("default", ("a1", None), ("a2", "a1"))
    reports = history("reports", ("r1", None), foreign={"r1": (("default", "a2"),)})
    # reports comes first in registry order, but must wait for default's a2.
    plan = planner.plan_migration(
        "upgrade",
        [reports, default],
        {"default": (), "reports": ()},
        {"default": "heads", "reports": "heads"},
    )
    assert ids(plan) == [("default", "a1"), ("default", "a2"), ("reports", "r1")]


def test_cross_bind_dependency_interleaves() -> None:
    """Binds interleave where dependencies demand it."""
    default = history("default", ("a1", None), ("a2", "a1"), foreign={"a2": (("reports", "r1"),)})
    reports = history("reports", ("r1", None), ("r2", "r1"), foreign={"r1": (("default", "a1"),)})
    plan = planner.plan_migration(
        "upgrade",
        [default, reports],
        {"default": (), "reports": ()},
        {"default": "heads", "reports": "heads"},
    )
    assert ids(plan) == [("default", "a1"), ("reports", "r1"), ("reports", "r2"), ("default", "a2")]


def test_cross_bind_dependency_missing_alone() -> None:
    """Upgrading one bind whose dependency is not applied elsewhere is refused."""
    default = history("default", ("a1", None))
    reports = history("reports", ("r1", None), foreign={"r1": (("default", "a1"),)})
    with pytest.raises(PlanError, match=r"a1 of bind 'default'.*--with-dependencies"):
        planner.plan_migration(
            "upgrade",
            [reports],
            {"default": (), "reports": ()},
            {"reports": "heads"},
            all_histories=[default, reports],
        )
    plan = planner.plan_migration(
        "upgrade",
        [reports],
        {"default": (), "reports": ()},
        {"reports": "heads"},
        all_histories=[default, reports],
        with_dependencies=True,
    )
    assert ids(plan) == [("default", "a1"), ("reports", "r1")]
    satisfied = planner.plan_migration(
        "upgrade",
        [reports],
        {"default": ("a1",), "reports": ()},
        {"reports": "heads"},
        all_histories=[default, reports],
    )
    assert ids(satisfied) == [("reports", "r1")]


def test_cross_bind_cycle() -> None:
    """A dependency cycle across binds is refused, naming the revisions."""
    default = history("default", ("a1", None), foreign={"a1": (("reports", "r1"),)})
    reports = history("reports", ("r1", None), foreign={"r1": (("default", "a1"),)})
    with pytest.raises(PlanError, match="cycle"):
        planner.plan_migration(
            "upgrade",
            [default, reports],
            {"default": (), "reports": ()},
            {"default": "heads", "reports": "heads"},
        )


def test_downgrade_respects_dependents() -> None:
    """Downgrading a revision another bind depends on goes after the dependent, or is refused."""
    default = history("default", ("a1", None))
    reports = history("reports", ("r1", None), foreign={"r1": (("default", "a1"),)})
    current = {"default": ("a1",), "reports": ("r1",)}
    plan = planner.plan_migration(
        "downgrade", [default, reports], current, {"default": "base", "reports": "base"}
    )
    assert ids(plan) == [("reports", "r1"), ("default", "a1")]
    with pytest.raises(PlanError, match="Downgrade bind 'reports' below revision r1 first"):
        planner.plan_migration(
            "downgrade", [default], current, {"default": "base"}, all_histories=[default, reports]
        )


def test_stamp_plan() -> None:
    """A stamp plan moves heads without running code; no-op stamps are unchanged."""
    plan = planner.plan_stamp([LINEAR], {"default": ("a1",)}, {"default": "a3"})
    assert len(plan) == 1
    assert plan.steps[0].source == ("a1",)
    assert plan.steps[0].destination == ("a3",)
    same = planner.plan_stamp([LINEAR], {"default": ("a3",)}, {"default": "heads"})
    assert not same
    purge = planner.plan_stamp([LINEAR], {"default": ("a3",)}, {"default": "heads"}, purge=True)
    assert len(purge) == 1
    with pytest.raises(RevisionError, match="relative"):
        planner.plan_stamp([LINEAR], {"default": ()}, {"default": "+1"})
