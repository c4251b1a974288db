"""Every code example of the FastWorker async-patterns document (reference 002), as written there.

The import lines change (`from fastworker import Client` -> `from prismq_desktop.compat.fastworker
import Client`, likewise TaskPriority/TaskStatus); the task functions are in fw_tasks.py, each call
runs in a real child process. Web handlers run on a minimal stand-in for FastAPI's `app` (only its
route decorator; the handler is then called as a request would).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import threading
import time

import pytest

from tests.compat import fw_tasks  # noqa: F401 - registers the tasks by name, as FastWorker's workers load them
from tests.compat.web import Routes as FastAPI


@pytest.fixture
def outbox(env_dir):
    return env_dir("outbox", "FW_OUTBOX")


def test_blocking_submit_task(example):
    from prismq_desktop.compat.fastworker import Client, TaskPriority
    data = {"rows": 3}

    async def main():
        client = Client()
        await client.start()

        # BLOCKS until task completes
        result = await client.submit_task(
            task_name="process_data",
            args=(data,),
            priority=TaskPriority.HIGH
        )

        # Result is available immediately
        if result.status == "success":
            print(f"Result: {result.result}")
        else:
            print(f"Error: {result.error}")
        failed = await client.submit_task(task_name="process_data", args=("bad",))
        return result, failed

    result, failed = example(main)
    assert result.status == "success" and result.result["processed"] == {"rows": 3}
    assert result.result["pid"] != os.getpid() and result.run.run.priority.name == "HIGH"
    assert failed.status == "failure" and failed.error == "ValueError: cannot process 'bad'"
    assert "raise ValueError" in failed.traceback and failed.result is None


def test_non_blocking_delay(example):
    from prismq_desktop.compat.fastworker import Client
    data = 21

    async def main():
        client = Client()
        await client.start()

        # Returns IMMEDIATELY with task ID
        started = time.monotonic()
        task_id = await client.delay("process_data", data, priority="high")
        took = time.monotonic() - started
        print(f"Task submitted: {task_id}")
        pending = await client.get_task_result(task_id)

        # Task is processing in background...
        # You can continue doing other work here

        # Check result later
        await asyncio.sleep(2)  # Simulate doing other work
        result = await client.get_task_result(task_id)
        if result:
            print(f"Result: {result.result}")
        return task_id, took, pending, result

    task_id, took, pending, result = example(main)
    assert isinstance(task_id, str) and took < 0.5 and pending is None
    assert result.status == "success" and result.result["processed"] == 21


def test_performance_blocking_is_sequential_non_blocking_parallel(example):
    from prismq_desktop.compat.fastworker import Client
    from prismq_desktop.core import TaskOrchestrator
    from prismq_desktop.tasks import set_orchestrator
    items = list(range(4))

    async def main():
        set_orchestrator(TaskOrchestrator(max_concurrent=4))
        client = Client()
        # Blocking: Sequential processing
        start = time.time()
        results = []
        for item in items:  # 100 items
            result = await client.submit_task("process", item)  # Waits each time
            results.append(result)
        blocking = time.time() - start

        # Non-blocking: Parallel processing
        start = time.time()
        task_ids = []
        for item in items:  # 100 items
            task_id = await client.delay("process", item)  # Returns immediately
            task_ids.append(task_id)

        # All tasks submitted in < 1 second!
        submitted = time.time() - start
        print(f"All tasks submitted in {time.time() - start:.2f}s")

        # Collect results later
        await asyncio.sleep(5)  # Give tasks time to complete
        parallel_results = [await client.get_task_result(tid) for tid in task_ids]
        parallel = time.time() - start
        return results, blocking, submitted, parallel_results, parallel

    results, blocking, submitted, parallel_results, parallel = example(main)
    assert [r.result for r in results] == [0, 2, 4, 6] == [r.result for r in parallel_results]
    assert submitted < 0.5 and blocking >= 4 * 0.2
    starts = sorted(r.started_at for r in parallel_results)
    ends = sorted(r.completed_at for r in parallel_results)
    assert starts[1] < ends[0]  # they ran side by side (four slots), not one after another


def test_web_api_background_processing(example, outbox):
    from prismq_desktop.compat.fastworker import Client

    class db:  # the example's database
        @staticmethod
        def save_user(data):
            return type("User", (), {"id": 7, "email": data["email"]})

    app = FastAPI()
    client = Client()

    @app.post("/users/")
    async def create_user(user_data: dict):
        """Create user and send welcome email in background."""
        # 1. Save user to database (fast)
        user = db.save_user(user_data)

        # 2. Send welcome email in background (non-blocking!)
        task_id = await client.delay("send_welcome_email", user.id, user.email)

        # 3. Return immediately (fast response!)
        return {
            "user_id": user.id,
            "email_task_id": task_id,
            "message": "User created, welcome email sending"
        }

    async def main():
        response = await create_user({"email": "ann@example.com"})
        result = await client.wait_for(response["email_task_id"], timeout=30)
        return response, result

    response, result = example(main)
    assert response["user_id"] == 7 and result.status == "success"
    assert (outbox / "welcome-7").read_text() == "ann@example.com"


def test_batch_processing_progress(example, capsys):
    from prismq_desktop.compat.fastworker import Client
    client = Client()

    async def process_batch(items: list):
        """Process many items in parallel."""
        # Submit all tasks (non-blocking)
        task_ids = [await client.delay("process_item", item) for item in items]
        print(f"Submitted {len(task_ids)} tasks")

        # Wait for completion
        while True:
            results = [await client.get_task_result(tid) for tid in task_ids]
            completed = sum(1 for r in results if r and r.status != "pending")
            print(f"Progress: {completed}/{len(task_ids)}")

            if completed == len(task_ids):
                break
            await asyncio.sleep(1)

        print("All tasks complete!")
        return results

    results = example(lambda: process_batch([1, 2, 3]))
    assert [r.result for r in results] == ["item 1 done", "item 2 done", "item 3 done"]
    out = capsys.readouterr().out
    assert "Submitted 3 tasks" in out and "Progress: 3/3" in out and "All tasks complete!" in out


def test_fire_and_forget_analytics(example, outbox):
    from prismq_desktop.compat.fastworker import Client
    app = FastAPI()
    client = Client()

    @app.post("/analytics/")
    async def track_event(event_data: dict):
        """Track analytics event - don't care about result."""
        await client.delay("track_analytics", event_data, priority="low")
        return {"status": "tracked"}

    async def main():
        answer = await track_event({"event": "signup"})
        deadline = time.monotonic() + 30
        while not (outbox / "analytics").exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        return answer

    assert example(main) == {"status": "tracked"}
    assert json.loads((outbox / "analytics").read_text()) == {"event": "signup"}


def test_poll_for_results(example):
    from prismq_desktop.compat.fastworker import Client, TaskStatus
    client = Client()
    data = "payload"

    async def main():
        task_id = await client.delay("long_task", data)

        # Poll periodically
        polls = 0
        while True:
            result = await client.get_task_result(task_id)
            polls += 1
            if result and result.status != TaskStatus.PENDING:
                break
            await asyncio.sleep(0.5)

        print(f"Result: {result.result}")
        return result, polls

    result, polls = example(main)
    assert result.result == {"echo": "payload"} and result.status == TaskStatus.SUCCESS == "success" and polls >= 1


class _Receiver:
    """A real TCP listener that records every line it is sent (one per connection)."""

    def __init__(self, refuse_first: int = 0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines: list[dict] = []
        self.refuse_first = refuse_first
        self.connections = 0
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if self.connections <= self.refuse_first:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    continue  # reset without reading
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.lines.append(json.loads(data))

    def close(self):
        self.sock.close()


def test_callbacks_to_a_tcp_address(example):
    from prismq_desktop.compat.fastworker import Client
    client = Client()
    data = {"n": 1}
    receiver = _Receiver()

    async def main():
        # The document writes `data` after `callback_address=...`, which Python refuses
        # (a positional argument after a keyword one); here it comes first.
        task_id = await client.delay_with_callback(
            "long_task",
            data,
            callback_address=f"tcp://localhost:{receiver.port}",
            callback_data={"request_id": 123}
        )

        # Callback listener will be notified when complete
        deadline = time.monotonic() + 30
        while not receiver.lines:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # nothing more comes
        return task_id

    try:
        task_id = example(main)
    finally:
        receiver.close()
    (line,) = receiver.lines
    assert line["task_id"] == task_id and line["status"] == "success"
    assert line["result"] == {"echo": {"n": 1}} and line["callback_data"] == {"request_id": 123}


def test_callbacks_retry_until_delivered_once_over_http(example):
    from prismq_desktop.compat.fastworker import Client
    got, statuses = [], iter([503, 503, 200, 200])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = next(statuses)
            if code == 200:
                got.append(json.loads(body))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client()

    async def main():
        task_id = await client.delay_with_callback("process_data", "x", callback=f"http://127.0.0.1:{server.server_port}/done",
                                                   callback_data={"request_id": 5})
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        return task_id

    try:
        task_id = example(main)
    finally:
        server.shutdown()
        server.server_close()
    assert len(got) == 1 and got[0]["task_id"] == task_id and got[0]["callback_data"] == {"request_id": 5}


def test_callback_to_a_callable_and_an_unreachable_address(example):
    from prismq_desktop.compat.fastworker import Client
    client = Client()
    called = []
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    dead_port = free.getsockname()[1]
    free.close()  # nothing listens there

    async def main():
        await client.delay_with_callback("process_data", 3, callback=called.append, callback_data="mine")
        tid = await client.delay_with_callback("process_data", 4, callback=f"tcp://127.0.0.1:{dead_port}")
        await client.wait_for(tid, timeout=30)
        deadline = time.monotonic() + 30
        while not (called and client.callback_errors):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        return tid

    tid = example(main)
    assert len(called) == 1 and called[0].result["processed"] == 3 and called[0].callback_data == "mine"
    ((failed_id, why),) = client.callback_errors
    assert failed_id == tid and "not delivered after 5 attempts" in why
    with pytest.raises(ValueError, match="must be tcp://host:port or an http:// URL"):
        asyncio.run(client.delay_with_callback("process_data", 1, callback="ftp://x"))


def test_best_practice_default_to_non_blocking(example, outbox):
    from prismq_desktop.compat.fastworker import Client
    client = Client()
    email = "bob@example.com"

    async def good():
        # Good - Fast response
        task_id = await client.delay("send_email", email)
        return {"task_id": task_id}

    async def bad():
        # Bad - Slow response
        result = await client.submit_task("send_email", email)
        return {"result": result}

    async def main():
        fast = await good()
        slow = await bad()
        await client.wait_for(fast["task_id"], timeout=30)
        return fast, slow

    fast, slow = example(main)
    assert fast["task_id"].isdigit() and slow["result"].status == "success", slow["result"].error
    assert (outbox / "email").read_text() == email


def test_best_practice_handle_missing_results(example):
    from prismq_desktop.compat.fastworker import Client, TaskStatus
    client = Client()

    async def check(task_id):
        # Good - Check if result exists
        result = await client.get_task_result(task_id)
        if result and result.status == TaskStatus.SUCCESS:
            return {"result": result.result}
        else:
            return {"status": "processing", "task_id": task_id}

    async def main():
        task_id = await client.delay("long_task", 1)
        early = await check(task_id)
        await client.wait_for(task_id, timeout=30)
        late = await check(task_id)
        # Bad - Assume result exists
        with pytest.raises(AttributeError):
            other = await client.delay("long_task", 2)
            result = await client.get_task_result(other)
            return {"result": result.result}  # Might be None!
        return early, late

    early, late = example(main)
    assert early["status"] == "processing" and late == {"result": {"echo": 1}}


def test_best_practice_poll_intervals(example):
    from prismq_desktop.compat.fastworker import Client
    client = Client()

    async def main():
        task_id = await client.delay("long_task", "p")
        polls = 0
        while await client.get_task_result(task_id) is None:
            polls += 1
            # Good - Reasonable poll interval
            await asyncio.sleep(0.5)  # Polls 2 times per second
        return polls

    assert 0 <= example(main) < 20


def test_pitfall_blocking_in_request_handlers(example):
    from prismq_desktop.compat.fastworker import Client
    client = Client()
    bad_app, good_app = FastAPI(), FastAPI()

    # ❌ Bad - Blocks request
    @bad_app.post("/process/")
    async def process(data: dict):
        result = await client.submit_task("heavy_task", data)
        return {"result": result.result}

    blocking = process

    # ✅ Good - Returns immediately
    @good_app.post("/process/")
    async def process(data: dict):  # noqa: F811 - the document defines it twice
        task_id = await client.delay("heavy_task", data)
        return {"task_id": task_id}

    async def main():
        t0 = time.monotonic()
        slow = await blocking({"values": [1, 2, 3]})
        t1 = time.monotonic()
        fast = await process({"values": [4]})
        t2 = time.monotonic()
        await client.wait_for(fast["task_id"], timeout=30)
        return slow, fast, t1 - t0, t2 - t1

    slow, fast, slow_s, fast_s = example(main)
    assert slow == {"result": 6} and slow_s >= 0.3 and fast_s < 0.3 and fast["task_id"].isdigit()


def test_pitfall_not_handling_pending_status(example):
    from prismq_desktop.compat.fastworker import Client, TaskStatus
    client = Client()
    data = "d"

    async def bad():
        # ❌ Bad - Assumes immediate completion
        task_id = await client.delay("task", data)
        result = await client.get_task_result(task_id)
        return result.result  # Might be None!

    async def good(task_id):
        # ✅ Good - Check status
        result = await client.get_task_result(task_id)
        if result and result.status == TaskStatus.SUCCESS:
            return result.result

    async def main():
        with pytest.raises(AttributeError):
            await bad()
        task_id = await client.delay("task", data)
        first = await good(task_id)
        await client.wait_for(task_id, timeout=30)
        return first, await good(task_id)

    assert example(main) == (None, "d")


def test_an_unknown_task_name_is_one_clear_error(example):
    from prismq_desktop.compat.fastworker import Client
    client = Client()

    async def main():
        with pytest.raises(KeyError) as info:
            await client.delay("no_such_task", 1)
        return str(info.value)

    text = example(main)
    assert "no task named 'no_such_task'" in text and "process_data" in text
