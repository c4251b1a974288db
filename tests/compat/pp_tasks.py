"""PacificPy-style @background tasks the PacificPy examples define (imported by name in the children).

The bodies are the document's with its placeholders (`process_step_one`, `send_to_dlq`...) made real
and small: they write to $PP_OUT so the tests can see what ran, and in which process.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from pathlib import Path

from prismq_desktop.compat.pacificpy import background, record_task_start, update_task_status

logger = logging.getLogger(__name__)


def _out(name: str, value) -> None:
    with open(Path(os.environ["PP_OUT"], name), "a") as f:
        f.write(json.dumps(value) + "\n")


class TransientError(Exception):
    pass


def process_data(data):
    if data.get("fail"):
        raise ValueError("bad data")
    if data.get("flaky_counter"):
        path = Path(data["flaky_counter"])
        n = int(path.read_text()) if path.exists() else 0
        path.write_text(str(n + 1))
        if n < data.get("fail_times", 0):
            raise TransientError(f"attempt {n + 1} failed")
    return {"ok": data}


@background
def send_email(to: str, subject: str, body: str):
    # Email sending logic
    _out("emails", [to, subject, body, os.getpid()])


@background
def process_payment(payment_data: dict):
    # External payment API call
    _out("payments", payment_data)


@background
def generate_report(user_id: int, report_type: str):
    # Report generation logic
    _out("reports", [user_id, report_type])


def is_profile_updated(user_id, profile_data):
    path = Path(os.environ["PP_OUT"], f"profile-{user_id}")
    return path.exists() and json.loads(path.read_text()) == profile_data


def apply_profile_update(user_id, profile_data):
    Path(os.environ["PP_OUT"], f"profile-{user_id}").write_text(json.dumps(profile_data))
    return {"status": "updated"}


@background
def update_user_profile(user_id: int, profile_data: dict):
    # Check if update was already applied
    if is_profile_updated(user_id, profile_data):
        return {"status": "already_updated"}

    # Apply update
    result = apply_profile_update(user_id, profile_data)
    return result


@background
def process_with_retry(data: dict, max_retries: int = 3):
    for attempt in range(max_retries + 1):
        try:
            return process_data(data)
        except TransientError as e:
            if attempt == max_retries:
                raise e

            # Exponential backoff
            wait_time = (2 ** attempt) * 0.05 + random.uniform(0, 0.01)  # the document's seconds, scaled down
            time.sleep(wait_time)


def process_step_one(data):
    return {**data, "one": True}


def process_step_two(data):
    return {**data, "two": True}


def process_step_three(data):
    _out("chain", data)
    return {**data, "three": True}


@background
def step_one(data: dict):
    result = process_step_one(data)
    # Enqueue next step
    step_two.delay(result)
    return result


@background
def step_two(data: dict):
    result = process_step_two(data)
    # Enqueue final step
    step_three.delay(result)
    return result


@background
def step_three(data: dict):
    return process_step_three(data)


def store_error(data, message):
    _out("errors", [data, message])


@background
def robust_task(data: dict):
    try:
        result = process_data(data)
        return result
    except Exception as e:
        logger.error(f"Task failed: {e}", exc_info=True)
        # Store error for debugging
        store_error(data, str(e))
        # Re-raise for retry logic
        raise


def send_to_dlq(data, message):
    _out("dlq", [data, message])


@background
def dlq_task(data: dict, retry_count: int = 0):
    max_retries = 5

    try:
        return process_data(data)
    except Exception as e:
        if retry_count >= max_retries:
            # Move to dead letter queue
            send_to_dlq(data, str(e))
            return {"status": "moved_to_dlq"}

        # Re-raise for retry
        raise


@background
def monitored_task(data: dict):
    task_id = str(uuid.uuid4())  # Or get from context
    record_task_start(task_id, "monitored_task")

    try:
        result = process_data(data)
        update_task_status(task_id, "completed", result)
        return result
    except Exception as e:
        update_task_status(task_id, "failed", str(e))
        raise


def record_metric(name, value):
    _out("metrics", [name, value])


@background
def timed_task(data: dict):
    start_time = time.time()

    try:
        result = process_data(data)
        duration = time.time() - start_time
        # Record metrics
        record_metric("task_duration", duration)
        return result
    except Exception:
        duration = time.time() - start_time
        record_metric("task_failure_duration", duration)
        raise


def chunk_list(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def process_chunk(chunk):
    _out("chunks", len(chunk))


@background
def memory_efficient_task(data: list):
    # Process data in chunks
    for chunk in chunk_list(data, 100):
        process_chunk(chunk)


@background
def send_notification(user_id: int, message: str):
    _out("notifications", [user_id, message])


@background
def process_simple_data(data: dict):
    return sorted(data)


@background(serializer="pickle")
def process_complex_data(data: object):
    # Only if necessary
    return {type(data).__name__: sorted(data)}


def fetch_user_data(user_id):
    return {"user_id": user_id, "secret": "kept in the task"}


@background
def process_user_data(user_id: int):
    # Fetch sensitive data inside task
    user_data = fetch_user_data(user_id)
    _out("users", user_data["user_id"])


@background(timeout=1)
def long_running_task():
    time.sleep(30)


@background
def send_welcome_email(user_id: int):
    # Simulate email sending
    import time
    time.sleep(0.2)
    print(f"Welcome email sent to user {user_id}")
    return {"status": "sent", "user_id": user_id}


@background
def process_user_upload(file_path: str):
    # Simulate file processing
    import time
    time.sleep(0.3)
    print(f"File processed: {file_path}")
    return {"status": "processed", "file_path": file_path}
