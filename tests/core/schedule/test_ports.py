"""The scheduler reaches its host only through the SchedulerHost protocol."""

from __future__ import annotations

import ast
import inspect

from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule import scheduler as scheduler_module
from prismq_desktop.core.schedule.ports import SchedulerHost


def protocol_members(proto: type) -> set[str]:
    return {name for name in vars(proto) if not name.startswith("_")}


def test_scheduler_uses_only_the_host_protocol():
    tree = ast.parse(inspect.getsource(scheduler_module))
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "orch"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    assert used  # the walk found the calls
    assert used <= protocol_members(SchedulerHost), used - protocol_members(SchedulerHost)


def test_the_orchestrator_has_every_member_of_the_protocol():
    assert {"registry", "bus", "delay", "record_unstarted", "owns", "cancel"} == protocol_members(SchedulerHost)
    methods = ("delay", "record_unstarted", "owns", "cancel")
    missing = [name for name in methods if not callable(getattr(TaskOrchestrator, name, None))]
    assert not missing
