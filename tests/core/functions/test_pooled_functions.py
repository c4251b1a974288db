"""Pooled function tasks: the warm worker imports the function's module once and keeps it."""

from __future__ import annotations

import asyncio
import os

from prismq_desktop.core import OutcomeKind, TaskOrchestrator
from prismq_desktop.core.patterns import TaskPattern
from tests.core.functions import fn_targets as t


def test_pooled_calls_reuse_the_module_imported_in_the_worker(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=1, pool_size=1) as orch:
            results = [await orch.execute(t.where, use_pool=True) for _ in range(4)]
            assert all(r.ok and r.run.pattern is TaskPattern.POOLED for r in results)
            stamps = {r.result[0] for r in results}
            # the first call imports it into the fork server; every later child is forked with it loaded
            assert len({r.result[0] for r in results[1:]}) == 1 and len(stamps) <= 2
            assert all(r.result[1] != os.getpid() for r in results)  # never in the app's process
            fresh = [await orch.execute(t.where) for _ in range(2)]
            assert fresh[0].result[0] != fresh[1].result[0]  # a fresh interpreter imports it each time
            value = await orch.execute(t.add, [1, 2], use_pool=True)
            assert value.result["sum"] == 3 and "adding 1 and 2" in value.stdout
            failed = await orch.execute(t.boom, [5], use_pool=True)
            assert failed.outcome.kind is OutcomeKind.FAILED and failed.error["type"] == "ValueError"
            assert "ValueError: bad input 5" in failed.stderr
            assert orch.pool is not None and orch.pool.stats().fallback_runs == 0

    asyncio.run(main())


def test_pooled_function_cancel_and_timeout_stop_the_tree(home, tmp_path):
    marker = tmp_path / "pids"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=2, pool_size=1) as orch:
            res = await orch.execute(t.sleeper, [60, str(marker)], use_pool=True, timeout=1.0, grace_period=1.0)
            assert res.outcome.kind is OutcomeKind.TIMED_OUT and res.result is None
            from tests.helpers import pid_gone

            assert all(pid_gone(int(p)) for p in marker.read_text().split())

    asyncio.run(main())


def test_a_module_that_fails_to_import_fails_the_run_not_the_worker(home, tmp_path):
    (tmp_path / "broken_mod.py").write_text("raise ImportError('this module is broken')\ndef f():\n    return 1\n")
    (tmp_path / "good_mod.py").write_text("def f():\n    return 'fine'\n")

    async def main():
        async with TaskOrchestrator(home, pool_size=1) as orch:
            bad = await orch.execute("broken_mod:f", kind="function", cwd=str(tmp_path), use_pool=True)
            assert not bad.ok and bad.error["type"] == "ImportError" and "this module is broken" in bad.error["message"]
            good = await orch.execute("good_mod:f", kind="function", cwd=str(tmp_path), use_pool=True)
            assert good.ok and good.result == "fine"

    asyncio.run(main())
