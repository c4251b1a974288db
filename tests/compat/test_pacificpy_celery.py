"""PacificPy's "Celery (Production)" backend example, as written, on a real redis-server and a real
`prismq-desktop worker` taking from the Celery app's default queue ("celery").

The calls are the guide's `@background` functions (pp_tasks.py); each runs in a child of the
worker, and the value a function returns comes back to the caller through the run's stream.
"""

from __future__ import annotations

import os

import pytest

from tests.compat import pp_tasks as t
from tests.compat.test_pacificpy import lines, out  # noqa: F401 - its $PP_OUT fixture
from tests.core.remote.conftest import Worker, redis_url  # noqa: F401 - the real redis-server fixture

pytestmark = pytest.mark.slow


def test_celery_production_backend_runs_calls_on_a_prismq_worker(redis_url, example, out, home, tmp_path):  # noqa: F811 - fixtures
    worker = Worker(redis_url, "celery", "pp-celery", 2, tmp_path)  # `prismq-desktop worker --queue celery`
    try:
        from celery import Celery

        from prismq_desktop.compat.pacificpy import CeleryBackgroundBackend, configure_background_tasks

        # Configure Celery
        celery_app = Celery('myapp', broker=redis_url)
        celery_backend = CeleryBackgroundBackend(celery_app=celery_app)
        configure_background_tasks(celery_backend)

        async def main():
            run_id = await t.send_email.delay("a@x.org", "hi", "hello")
            value = await t.update_user_profile.submit(7, {"name": "bo"})
            return await celery_backend.orchestrator.wait(run_id, timeout=30), value

        sent, value = example(main)
    finally:
        worker.stop()
    assert sent.ok and sent.run.worker_host == "pp-celery" and sent.run.remote_id, sent.run.outcome
    assert sent.run.spec.where == "remote:celery"
    ((to, subject, body, pid),) = lines(out, "emails")
    assert (to, subject, body) == ("a@x.org", "hi", "hello") and pid != os.getpid()
    assert value == {"status": "updated"}  # the function's value, back from the worker


def test_celery_backend_needs_a_redis_broker():
    from celery import Celery

    from prismq_desktop.compat.pacificpy import CeleryBackgroundBackend

    with pytest.raises(ValueError, match="unsupported broker"):
        CeleryBackgroundBackend(celery_app=Celery("myapp", broker="amqp://guest@localhost//"))
    with pytest.raises(ValueError, match="needs a Celery app with a broker"):
        CeleryBackgroundBackend(celery_app=None)
    backend = CeleryBackgroundBackend(celery_app=Celery("myapp", broker="redis://h:6379/0"), queue="gpu")
    assert backend.queue == "gpu" and backend.broker == "redis://h:6379/0"
