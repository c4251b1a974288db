"""The light-scheduling document's examples (reference 004) and the best-practices summary's run
modes (reference 001, which has no code example of its own: its names are checked here).

APScheduler's factory, FastAPI's BackgroundTasks, the CronJob with `concurrencyPolicy: Forbid`,
the Redis lock and the probe jobs each run on PrismQ: real children, a real registry, the CLI as
a real command.
"""

from __future__ import annotations

import json

import pytest

from tests.compat import light_jobs
from tests.core.test_cli import cli


@pytest.fixture
def lj_out(env_dir):
    return env_dir("lj", "LJ_OUT")


def test_pattern_1_apscheduler_create_scheduler(example, home):
    from tests.compat.light_jobs import create_scheduler

    async def main():
        scheduler = create_scheduler()
        scheduler.start()

        # Jobs are automatically registered and scheduled
        again = create_scheduler()  # the next app start registers nothing twice
        run_id = again.run_now("probe_all_providers")
        result = await light_jobs._scheduler_orchestrator.core.wait(run_id)
        names = [s.name for s in again.all()]
        await light_jobs._scheduler_orchestrator.close()
        return names, result

    names, result = example(main)
    assert names == ["probe_all_providers"]
    assert result.result == [{"provider": 1, "healthy": True}, {"provider": 2, "healthy": True}]


def test_pattern_2_fastapi_background_tasks(example, home, lj_out):
    from prismq_desktop.compat import BackgroundTasks
    from tests.compat.light_jobs import simple_cleanup_task
    routes = {}

    class App:
        def post(self, path):
            return lambda fn: routes.setdefault(path, fn)

    app = App()

    @app.post("/cleanup")
    async def trigger_cleanup(background_tasks: BackgroundTasks):
        background_tasks.add_task(simple_cleanup_task)
        return {"message": "Cleanup started in background"}

    async def main():
        tasks = BackgroundTasks()
        answer = await routes["/cleanup"](tasks)
        from prismq_desktop.tasks import default_orchestrator
        (run_id,) = tasks.run_ids
        return answer, await default_orchestrator().wait(run_id)

    answer, result = example(main)
    assert answer == {"message": "Cleanup started in background"} and result.result == "cleaned"
    assert (lj_out / "cleaned").read_text() == "yes"


def test_pattern_3_cronjob_with_concurrency_policy_forbid(home, work):
    # kubectl apply -f k8s/provider-probe-cronjob.yaml ; kubectl get cronjobs
    res = cli(home, "schedule", "add", "--cron", "*/5 * * * *", "--overlap", "forbid", "provider-probe",
              str(work / "probe_worker.py"))
    assert res.returncode == 0, res.stderr
    listed = cli(home, "schedule", "list", "--json")
    (sched,) = json.loads(listed.stdout)
    assert sched["name"] == "provider-probe" and sched["overlap"] == "forbid"
    fired = cli(home, "schedule", "run-now", "provider-probe")  # kubectl create job --from=cronjob/...
    assert fired.returncode == 0 and b'"probed"' in fired.stdout


def test_redis_lock_one_run_at_a_time(example, home, work):
    """redis_client.lock(key, timeout=300, blocking_timeout=0): a second start fails at once.
    Here: an overlap-forbid schedule fired twice while the first run is alive starts it once."""
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern

    async def main():
        orchestrator = TaskOrchestrator()
        task = await orchestrator.execute(script_path="send_email.py", pattern=TaskPattern.PERIODIC,
                                          interval_seconds=300, task_name="locked", overlap="forbid")
        first = task.run_now()
        second = task.run_now()
        await orchestrator.wait(first)
        return first, second

    first, second = example(main)
    assert first is not None and second is None
    assert (work / "sent.txt").read_text().count("\n") == 1


def test_testing_utilities_and_the_worker_script(home, work):
    # Test APScheduler jobs / Test background tasks
    from tests.compat.light_jobs import probe_all_providers_job, simple_cleanup_task  # noqa: F401

    # Test CronJob worker: python backend/probe_worker.py
    res = cli(home, "run", str(work / "probe_worker.py"))
    assert res.returncode == 0 and json.loads(res.stdout)["probed"] == ["provider-1", "provider-2"]


def test_migration_apscheduler_job_for_one_provider(example, home):
    from prismq_desktop.compat import TaskOrchestrator, TaskPattern
    from tests.compat.light_jobs import probe_single_provider_job

    async def main():
        orchestrator = TaskOrchestrator()
        task = await orchestrator.execute(probe_single_provider_job, [7], pattern=TaskPattern.PERIODIC,
                                          interval_seconds=60, task_name="probe_provider:7")
        return (await orchestrator.wait(task.run_now())).result

    assert example(main) == {"provider": 7, "healthy": True}


def test_migration_cronjob_wrapper_runs_once_per_key(example, home):
    """probe_provider_cronjob with `redis_lock(f"provider_probe:{id}")`: an idempotency key per provider."""
    from prismq_desktop.compat import TaskOrchestrator
    from tests.compat.light_jobs import probe_single_provider_job

    async def main():
        orchestrator = TaskOrchestrator()
        a = orchestrator.delay(probe_single_provider_job, [3], idempotency_key="provider_probe:3")
        b = orchestrator.delay(probe_single_provider_job, [3], idempotency_key="provider_probe:3")
        return a, b, (await orchestrator.wait(a)).result

    a, b, result = example(main)
    assert a == b and result == {"provider": 3, "healthy": True}


@pytest.mark.parametrize("mode", ["async", "threaded", "local", "dry-run"])
def test_best_practices_run_modes(example, mode):
    from prismq_desktop.compat import RunMode, SubprocessWrapper, TaskOrchestrator

    assert SubprocessWrapper(RunMode(mode)).mode_for_run() in set(RunMode)

    async def main():
        orchestrator = TaskOrchestrator()
        return await orchestrator.execute(script_path="task.py", mode=mode)

    exit_code, stdout, _ = example(main)
    assert exit_code == 0
    assert stdout == ("" if mode == "dry-run" else "line 0\nline 1\nline 2\n")
