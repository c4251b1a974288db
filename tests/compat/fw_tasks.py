"""FastWorker-style tasks the FastWorker examples call by name (imported by name in the children)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prismq_desktop.compat.fastworker import task


@task
def process_data(data):
    if data == "bad":
        raise ValueError("cannot process 'bad'")
    return {"processed": data, "pid": os.getpid()}


@task
def process(item):
    time.sleep(0.2)
    return item * 2


@task
def process_item(item):
    time.sleep(0.05)
    return f"item {item} done"


@task
def send_welcome_email(user_id, email):
    Path(os.environ["FW_OUTBOX"], f"welcome-{user_id}").write_text(email)
    return "sent"


@task
def send_email(email):
    Path(os.environ["FW_OUTBOX"], "email").write_text(email)
    return "sent"


@task
def track_analytics(event_data):
    with open(Path(os.environ["FW_OUTBOX"], "analytics"), "a") as f:
        f.write(json.dumps(event_data) + "\n")


@task
def long_task(data):
    time.sleep(0.3)
    return {"echo": data}


@task
def heavy_task(data):
    time.sleep(0.3)
    return sum(data["values"])


@task(name="task")
def a_task(data):
    time.sleep(0.2)
    return data
