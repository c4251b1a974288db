"""Every code example of the pattern comparison guide (reference 000), as written there.

Only the import line changes (`from Client.Backend.src.core import ...` -> `from
prismq_desktop.compat import ...`); the scripts they name are small real ones (targets/), run
as real processes with a real registry in $PRISMQ_DESKTOP_HOME. After each example the test
checks what the registry recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from prismq_desktop.core import RunRegistry
from prismq_desktop.core.store import RunQuery


def runs(home: Path) -> list:
    with RunRegistry(home / "registry.sqlite3") as reg:
        return reg.query(RunQuery(limit=1000, descending=False))


def test_pattern_1_simple(example, home, capsys):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        exit_code, stdout, stderr = await orchestrator.execute(
            script_path=Path("validate_data.py"),
            args=["--source", "data.csv"],
            pattern=TaskPattern.SIMPLE
        )
        if exit_code == 0:
            print(f"Success: {stdout}")
        return exit_code, stdout, stderr

    exit_code, stdout, stderr = example(main)
    assert (exit_code, stdout, stderr) == (0, "3 valid rows in data.csv\n", "")
    assert "Success: 3 valid rows" in capsys.readouterr().out
    (run,) = runs(home)
    assert run.outcome.kind.value == "succeeded" and run.pattern.value == "simple"


def test_pattern_1_simple_failure_keeps_the_shape(example):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        return await orchestrator.execute(script_path=Path("validate_data.py"), args=["--source", "missing.csv"],
                                          pattern=TaskPattern.SIMPLE)

    exit_code, stdout, stderr = example(main)
    assert exit_code == 1 and stdout == "" and "cannot read missing.csv" in stderr


def test_pattern_2_long_running_with_a_run_id(example, home, capfd):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        exit_code = await orchestrator.execute(
            script_path=Path("train_model.py"),
            args=["--epochs", "100"],
            pattern=TaskPattern.LONG_RUNNING,
            streaming=True,
            run_id="training_job_123"
        )
        # the caller's id works wherever an id does
        status = orchestrator.status("training_job_123")
        return exit_code, status

    exit_code, status = example(main)
    assert exit_code == 0 and isinstance(exit_code, int)
    assert status.ok and status.run.key == "training_job_123" and status.run.progress == 1.0
    out = capfd.readouterr().out
    assert "PRISMQ:PROGRESS 100/100 epoch 100" in out and "model saved" in out  # streamed to our stdout
    (run,) = runs(home)
    assert run.key == "training_job_123" and run.pattern.value == "long_running"


def test_pattern_2_the_run_id_cancels_it(example):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        job = asyncio.ensure_future(orchestrator.execute(
            script_path=Path("train_model.py"), args=["--epochs", "100", "--sleep", "0.5"],
            pattern=TaskPattern.LONG_RUNNING, streaming=True, run_id="training_job_123"))
        deadline = time.monotonic() + 20
        while True:
            await asyncio.sleep(0.05)
            try:
                if orchestrator.status("training_job_123").run.status.value == "running":
                    break
            except KeyError:
                pass
            assert time.monotonic() < deadline
        assert orchestrator.cancel("training_job_123")
        return await job

    assert example(main) == 130  # cancelled, as the CLI's `run` exits


def test_pattern_3_concurrent(example, home):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern
    item1, item2, item3 = ["a.png"], {"input": "b.png", "width": 640, "fast": True, "skip": False}, "c.png"

    async def main():
        orchestrator = TaskOrchestrator()
        results = await orchestrator.execute(
            script_path=Path("process_item.py"),
            args=["--batch"],
            pattern=TaskPattern.CONCURRENT,
            concurrent_tasks=10,
            max_concurrent=10,
            tasks=[item1, item2, item3]
        )
        return results

    results = example(main)
    assert [json.loads(stdout) for _code, stdout, _err in results] == [
        ["--batch", "a.png"], ["--batch", "--input", "b.png", "--width", "640", "--fast"], ["--batch", "c.png"]]
    assert [r.exit_code for r in results] == [0, 0, 0]
    assert all(r.pattern.value == "concurrent" for r in runs(home))


def test_pattern_4_fire_and_forget_status_is_live(example, work):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        run = await orchestrator.execute(
            script_path=Path("send_email.py"),
            args=["--to", "user@example.com"],
            pattern=TaskPattern.FIRE_AND_FORGET,
            wait_for_result=False
        )
        # Returns immediately, check run.status later
        first = run.status
        seen = {first}
        deadline = time.monotonic() + 20
        while run.status not in ("succeeded", "failed"):
            seen.add(run.status)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        return first, seen, run.status

    first, seen, last = example(main)
    assert first in ("queued", "running") and "running" in seen and last == "succeeded"
    assert (work / "sent.txt").read_text() == "user@example.com\n"


def test_pattern_5_periodic_registration_at_every_start_updates_it(example, home, work):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def app_start(interval):
        orchestrator = TaskOrchestrator()
        task = await orchestrator.execute(
            script_path=Path("cleanup.py"),
            args=[],
            pattern=TaskPattern.PERIODIC,
            interval_seconds=interval,  # Every hour
            task_name="cleanup_temp_files"
        )
        fired = task.run_now()
        result = await orchestrator.wait(fired)
        return task, orchestrator.scheduler.all(), result

    first, scheds, result = example(lambda: app_start(3600))
    assert first.created and [s.name for s in scheds] == ["cleanup_temp_files"] and result.ok
    again, scheds, _ = example(lambda: app_start(3600))  # the next app start: no error, same schedule
    assert not again.created and again.schedule_id == first.schedule_id and len(scheds) == 1
    changed, scheds, _ = example(lambda: app_start(1800))  # a new interval in the code: the schedule follows
    assert scheds[0].trigger.to_dict()["seconds"] == 1800 and changed.schedule_id == first.schedule_id
    assert (work / "cleanup.log").read_text().count("cleaned") == 3


def test_pattern_6_pooled(example, home):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        result = await orchestrator.execute(
            script_path=Path("query_db.py"),
            args=["--query", "SELECT * FROM users"],
            pattern=TaskPattern.POOLED,
            use_pool=True
        )
        return result, orchestrator.pool.stats()

    (exit_code, stdout, stderr), stats = example(main)
    assert (exit_code, stdout, stderr) == (0, "ann\nbob\n", "")
    (run,) = runs(home)
    assert run.pattern.value == "pooled" and stats.runs_served == 1 and stats.fallback_runs == 0  # a warm worker


def test_combining_patterns_video_pipeline(example, home, work):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern
    video_list = ["a.mp4", "b.mp4", "c.mp4"]

    async def main():
        orchestrator = TaskOrchestrator()
        # 1. Periodic cleanup (Pattern 5)
        await orchestrator.execute(
            script_path=Path("cleanup.py"),
            pattern=TaskPattern.PERIODIC,
            interval_seconds=3600
        )

        # 2. Concurrent batch processing (Pattern 3)
        results = await orchestrator.execute(
            script_path=Path("process_videos.py"),
            pattern=TaskPattern.CONCURRENT,
            concurrent_tasks=5,
            tasks=video_list
        )

        # 3. Send notification (Pattern 4)
        await orchestrator.execute(
            script_path=Path("notify.py"),
            pattern=TaskPattern.FIRE_AND_FORGET,
            wait_for_result=False
        )
        sched = orchestrator.scheduler.all()
        last = max(r.id for r in orchestrator.registry.query(RunQuery(limit=10)))
        await orchestrator.wait(last)
        return results, sched

    results, sched = example(main)
    assert [json.loads(r.stdout) for r in results] == [["a.mp4"], ["b.mp4"], ["c.mp4"]]
    assert [s.name for s in sched] == ["cleanup.py"]
    assert [r.name for r in runs(home)][-1] == "notify.py"


def test_migration_simple_to_long_running(example):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern, execute_module
    script_path, args, cwd = "validate_data.py", ["--source", "data.csv"], None

    async def before():
        # Before
        exit_code, stdout, stderr = await execute_module(script_path, args, cwd)
        return exit_code, stdout, stderr

    async def after():
        orchestrator = TaskOrchestrator()
        exit_code = await orchestrator.execute(
            script_path=script_path,
            args=args,
            pattern=TaskPattern.LONG_RUNNING,
            streaming=True
        )
        return exit_code

    assert example(before) == (0, "3 valid rows in data.csv\n", "")
    assert example(after) == 0


def test_migration_direct_to_concurrent(example, home):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern, execute_module
    items = ["x", "y", "z", "w"]

    async def process(item):
        return await execute_module("process.py", [item])

    async def before():
        # Before
        out = []
        for item in items:
            result = await process(item)
            out.append(result)
        return out

    async def after():
        orchestrator = TaskOrchestrator()
        results = await orchestrator.execute(
            script_path=Path("process.py"),
            pattern=TaskPattern.CONCURRENT,
            concurrent_tasks=5,
            tasks=items
        )
        return results

    assert [r.stdout for r in example(before)] == [r.stdout for r in example(after)]
    assert len(runs(home)) == 8


def test_pattern_advisor_result_is_a_pattern(example):
    from prismq_desktop.compat import PatternAdvisor, TaskOrchestrator, TaskPattern

    pattern = PatternAdvisor.recommend(
        expected_duration_seconds=300,
        requires_streaming=True,
        concurrent_tasks=1,
        needs_result=True,
        recurring=False,
        high_frequency=False
    )
    assert pattern == TaskPattern.LONG_RUNNING and pattern.reason

    async def main():
        orchestrator = TaskOrchestrator()
        return await orchestrator.execute(script_path=Path("task.py"), pattern=pattern, streaming=True)

    assert example(main) == 0


def test_auto_select_from_kwargs(example, home, capfd):
    from prismq_desktop.compat import TaskOrchestrator

    async def main():
        orchestrator = TaskOrchestrator()
        # Auto-selects based on kwargs
        result = await orchestrator.execute(
            script_path=Path("task.py"),
            streaming=True  # Auto-selects LONG_RUNNING
        )
        return result

    assert example(main) == 0
    assert "line 2" in capfd.readouterr().out
    (run,) = runs(home)
    assert run.pattern.value == "long_running"


@pytest.mark.parametrize("bad, message", [
    ({"run_id": "has space"}, "may hold only"),
    ({"run_id": "1abc"}, "start with a letter"),
])
def test_bad_run_ids_are_one_line_and_nothing_runs(example, home, bad, message):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern
    from prismq_desktop.core.models import InvalidRunKey

    async def main():
        orchestrator = TaskOrchestrator()
        with pytest.raises(InvalidRunKey) as info:
            await orchestrator.execute(script_path=Path("task.py"), pattern=TaskPattern.LONG_RUNNING, **bad)
        return str(info.value)

    text = example(main)
    assert message in text and "\n" not in text and runs(home) == []
