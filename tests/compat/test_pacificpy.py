"""Every code example of the PacificPy background-tasks guide (reference 003), as written there.

Import lines change (`from pacificpy.background... import` -> `from prismq_desktop.compat.pacificpy
import`); the decorated functions are in pp_tasks.py (the document's bodies, placeholders made
small and real, sleeps scaled down), each call a real child process. Routes run on a minimal
stand-in for the web app (its decorators only). The Celery (Production) example runs against a real
redis-server and worker in test_pacificpy_celery.py; ARQ is not part of this build: its example
checks that the import says so in one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from prismq_desktop.core import RunRegistry
from prismq_desktop.core.store import RunQuery
from tests.compat import pp_tasks as t
from tests.compat.web import Request
from tests.compat.web import Routes as App


@pytest.fixture
def out(env_dir):
    return env_dir("out", "PP_OUT")


@pytest.fixture
def local(example, out):
    """The document's development backend, configured before each example."""
    from prismq_desktop.compat.pacificpy import configure_background_tasks, get_local_executor

    # Use local executor for development
    local_executor = get_local_executor(max_workers=4)
    configure_background_tasks(local_executor)
    return local_executor


def lines(out: Path, name: str) -> list:
    path = out / name
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def all_runs(home):
    with RunRegistry(home / "registry.sqlite3") as reg:
        return reg.query(RunQuery(limit=1000, descending=False))


async def settle(home, count=None, timeout=30):
    """Wait until every recorded run has ended (and at least `count` exist)."""
    from prismq_desktop.tasks import default_orchestrator

    registry = default_orchestrator().registry  # the app's own connection (no new one per poll)
    deadline = time.monotonic() + timeout
    while True:
        runs = registry.query(RunQuery(limit=1000, descending=False))
        if runs and all(not r.is_active for r in runs) and (count is None or len(runs) >= count):
            return runs
        assert time.monotonic() < deadline, [(r.id, r.name, r.status) for r in runs]
        await asyncio.sleep(0.05)


def test_long_running_operations_send_email(example, local, out, home):
    app = App()
    send_email = t.send_email

    @app.post("/notifications")
    async def send_notification(request):
        data = await request.json()
        await send_email.delay(data["to"], data["subject"], data["body"])
        return {"status": "Email queued"}

    async def main():
        answer = await send_notification(Request({"to": "a@x.org", "subject": "hi", "body": "hello"}))
        await settle(home, 1)
        return answer

    assert example(main) == {"status": "Email queued"}
    ((to, subject, body, pid),) = lines(out, "emails")
    assert (to, subject, body) == ("a@x.org", "hi", "hello") and pid != os.getpid()


def test_external_api_calls_process_payment(example, local, out, home):
    async def main():
        await t.process_payment.delay({"amount": 12})
        return await settle(home, 1)

    (run,) = example(main)
    assert run.outcome.kind.value == "succeeded" and lines(out, "payments") == [{"amount": 12}]


def test_data_processing_generate_report(example, local, out, home):
    async def main():
        await t.generate_report.delay(42, "monthly")
        await settle(home, 1)

    example(main)
    assert lines(out, "reports") == [[42, "monthly"]]


def test_local_executor_limits_workers(example, out, home):
    from prismq_desktop.compat.pacificpy import configure_background_tasks, get_local_executor

    # Use local executor for development
    local_executor = get_local_executor(max_workers=4)
    configure_background_tasks(local_executor)

    async def main():
        for i in range(6):
            await t.send_notification.delay(i, "m")
        peak = 0
        while True:
            peak = max(peak, local_executor.orchestrator.running_count)
            runs = local_executor.orchestrator.registry.query(RunQuery(limit=100))
            if len(runs) == 6 and all(not r.is_active for r in runs):
                return peak
            await asyncio.sleep(0.01)

    assert 1 <= example(main) <= 4
    assert sorted(x[0] for x in lines(out, "notifications")) == list(range(6))
    with pytest.raises(ValueError, match="max_workers must be a whole number of at least 1"):
        get_local_executor(max_workers=0)


def test_arq_backend_is_not_in_this_build():
    with pytest.raises(ImportError, match="ARQBackgroundBackend is not available"):
        from prismq_desktop.compat.pacificpy import ARQBackgroundBackend  # noqa: F401


def test_idempotency_update_user_profile(example, local, out, home):
    async def main():
        first = await t.update_user_profile.submit(1, {"name": "ann"})
        second = await t.update_user_profile.submit(1, {"name": "ann"})
        return first, second

    assert example(main) == ({"status": "updated"}, {"status": "already_updated"})


def test_retry_logic_with_backoff(example, local, out, home, tmp_path):
    counter = tmp_path / "count"

    async def main():
        ok = await t.process_with_retry.submit({"flaky_counter": str(counter), "fail_times": 2})
        from prismq_desktop.tasks import TaskFailed
        with pytest.raises(TaskFailed) as info:
            await t.process_with_retry.submit({"flaky_counter": str(tmp_path / "c2"), "fail_times": 9}, max_retries=1)
        return ok, info.value

    ok, failed = example(main)
    assert ok["ok"]["fail_times"] == 2 and counter.read_text() == "3"
    assert failed.error_type == "TransientError" and "attempt 2 failed" in str(failed)


def test_task_chaining(example, local, out, home):
    async def main():
        await t.step_one.delay({"start": 1})
        return await settle(home, 3, timeout=60)

    runs = example(main)
    assert [r.name for r in runs][:3] == ["step_one", "step_two", "step_three"]
    assert all(r.outcome.kind.value == "succeeded" for r in runs)
    assert lines(out, "chain") == [{"start": 1, "one": True, "two": True}]
    assert runs[2].result_value == {"start": 1, "one": True, "two": True, "three": True}


def test_graceful_error_handling(example, local, out, home):
    async def main():
        from prismq_desktop.tasks import TaskFailed
        with pytest.raises(TaskFailed) as info:
            await t.robust_task.submit({"fail": True})
        return info.value

    failed = example(main)
    assert failed.error_type == "ValueError" and lines(out, "errors") == [[{"fail": True}, "bad data"]]
    (run,) = all_runs(home)
    assert "Task failed: bad data" in Path(run.log_path).read_bytes().decode("utf-8", "replace")  # logged


def test_dead_letter_queue(example, local, out, home):
    async def main():
        moved = await t.dlq_task.submit({"fail": True}, retry_count=5)
        # PrismQ's own dead-letter list: a task whose retries run out lands there
        exhausted = await t.dlq_task.submit_with(({"fail": True},), {}, max_retries=1, backoff_base=0.05, jitter=0)
        assert not exhausted.ok and exhausted.attempts == 2
        from prismq_desktop.tasks import default_orchestrator
        return moved, default_orchestrator().dead_letters()

    moved, letters = example(main)
    assert moved == {"status": "moved_to_dlq"} and lines(out, "dlq") == [[{"fail": True}, "bad data"]]
    assert len(letters) == 1 and letters[0].name == "dlq_task"


def test_task_monitoring(example, local, out, home):
    from prismq_desktop.compat.pacificpy import configure_task_monitor

    async def main():
        monitor = configure_task_monitor()
        run_id = await t.monitored_task.delay({"x": 1})
        from prismq_desktop.tasks import default_orchestrator
        await default_orchestrator().wait(run_id)
        return monitor.notes(run_id), monitor.metrics("monitored_task")

    notes, metrics = example(main)
    assert [n["status"] for n in notes] == ["started", "completed"] and notes[1]["detail"] == {"ok": {"x": 1}}
    assert metrics.count == 1 and metrics.success_rate == 1.0


def test_metrics_collection(example, local, out, home):
    async def main():
        await t.timed_task.submit({"y": 2})
        from prismq_desktop.tasks import TaskFailed
        with pytest.raises(TaskFailed):
            await t.timed_task.submit({"fail": True})

    example(main)
    assert [name for name, _ in lines(out, "metrics")] == ["task_duration", "task_failure_duration"]


def test_worker_scaling_is_the_concurrency_limit(example, out, home):
    # celery -A myapp worker --concurrency=10   /   arq myapp.WorkerSettings --workers 4
    from prismq_desktop.compat.pacificpy import configure_background_tasks, get_local_executor
    executor = get_local_executor(max_workers=2)
    configure_background_tasks(executor)

    async def main():
        executor.orchestrator.set_max_concurrent(4)  # scaled live, as the Concurrency tab does
        return executor.orchestrator.max_concurrent

    assert example(main) == 4


def test_queue_management(example, local, out, home):
    from prismq_desktop.tasks import default_orchestrator
    alerts = []

    def send_alert(text):
        alerts.append(text)

    # Monitor queue length
    def get_queue_length():
        # Implementation depends on backend
        return default_orchestrator().queue_length

    # Alert on queue backlog
    def check_queue_backlog(limit=1000):
        if get_queue_length() > limit:
            send_alert("High queue backlog detected")

    async def main():
        default_orchestrator().pause_queue()
        for i in range(5):
            await t.send_notification.delay(i, "q")
        check_queue_backlog(limit=3)
        length = get_queue_length()
        default_orchestrator().resume_queue()
        await settle(home, 5)
        return length

    assert example(main) == 5 and alerts == ["High queue backlog detected"]


def test_resource_management_chunks(example, local, out, home):
    async def main():
        await t.memory_efficient_task.submit(list(range(250)))

    example(main)
    assert lines(out, "chunks") == [100, 100, 50]


def test_task_size_small_focused_tasks(example, local, out, home):
    async def main():
        await t.send_notification.submit(3, "hello")

    example(main)
    assert lines(out, "notifications") == [[3, "hello"]]


def test_data_serialization_json_and_pickle(example, local, out, home):
    async def main():
        simple = await t.process_simple_data.submit({"b": 1, "a": 2})
        complex_ = await t.process_complex_data.submit({3, 1, 2})  # a set: JSON cannot carry it, pickle can
        from prismq_desktop.tasks import TaskFailed
        with pytest.raises((TaskFailed, TypeError, ValueError)):
            await t.process_simple_data.submit({1, 2})  # JSON by default: refused, said clearly
        return simple, complex_

    assert example(main) == (["a", "b"], {"set": [1, 2, 3]})


def test_timeout_management(example, local, out, home):
    async def main():
        from prismq_desktop.tasks import TaskFailed
        started = time.monotonic()
        with pytest.raises(TaskFailed) as info:
            await t.long_running_task.submit()
        return info.value, time.monotonic() - started

    failed, took = example(main)
    assert failed.result.outcome.kind.value == "timed_out" and took < 15


def test_security_fetch_sensitive_data_inside_the_task(example, local, out, home):
    async def main():
        await t.process_user_data.submit(9)

    example(main)
    assert lines(out, "users") == [9]
    (run,) = all_runs(home)
    assert "secret" not in run.spec.to_dict().__repr__()  # only the id was passed


def test_complete_example_implementation(example, out, home, capfd):
    from prismq_desktop.compat.pacificpy import configure_background_tasks, configure_task_monitor, get_local_executor

    # Create app
    app = App()

    # Configure background tasks
    local_executor = get_local_executor(max_workers=4)
    configure_background_tasks(local_executor)

    # Configure task monitoring
    configure_task_monitor()

    send_welcome_email, process_user_upload = t.send_welcome_email, t.process_user_upload

    def create_user_in_database(data):
        return 17

    # Routes
    @app.post("/users")
    async def create_user(request):
        data = await request.json()
        user_id = create_user_in_database(data)

        # Send welcome email in background
        await send_welcome_email.delay(user_id)

        return {"user_id": user_id, "message": "User created"}

    @app.post("/uploads")
    async def upload_file(request):
        data = await request.json()
        file_path = data["file_path"]

        # Process file in background
        await process_user_upload.delay(file_path)

        return {"message": "File upload received"}

    async def main():
        a = await create_user(Request({"name": "ann"}))
        b = await upload_file(Request({"file_path": "/tmp/x.csv"}))
        runs = await settle(home, 2)
        return a, b, runs

    a, b, runs = example(main)
    assert a == {"user_id": 17, "message": "User created"} and b == {"message": "File upload received"}
    assert sorted(r.result_value["status"] for r in runs) == ["processed", "sent"]
    assert app.run() == "serving"
