"""The broker URL rules and the core without the remote extra (no Redis needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prismq_desktop.core.models import RunSpec, where_problem
from prismq_desktop.core.remote.config import BrokerError, check_broker_url, require_broker


def test_broker_urls(monkeypatch):
    assert check_broker_url("redis://:pw@h:6379/0") and check_broker_url("rediss://u:pw@h/1")
    for bad, needle in (("http://h", "unsupported"), ("redis://", "no host"), ("redis://h:99999", "(?i)port")):
        with pytest.raises(BrokerError, match=needle) as info:
            check_broker_url(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(BrokerError, match="••••••") as info:
        check_broker_url("amqp://:hunter2@h")
    assert "hunter2" not in str(info.value)
    monkeypatch.delenv("PRISMQ_BROKER_URL", raising=False)
    with pytest.raises(BrokerError, match="no broker"):
        require_broker()


def test_where_and_old_specs_load():
    assert where_problem(None) is None and where_problem("remote:gpu-1") is None and where_problem("pool") is None
    assert "queue" in (where_problem("remote:") or "") and "unknown" in (where_problem("mars") or "")
    spec = RunSpec("x.py", where="remote:q")
    assert RunSpec.from_dict(spec.to_dict()) == spec and spec.remote_queue == "q"
    old = RunSpec("x.py").to_dict()
    assert "where" not in old and RunSpec.from_dict(old).where is None  # old rows load, local JSON unchanged


def test_the_core_imports_without_celery_or_redis():
    code = ("import sys\nfor m in ('celery', 'redis', 'kombu'): sys.modules[m] = None\n"
            "import prismq_desktop.core.orchestrator.orchestrator, prismq_desktop.core.engine, prismq_desktop.cli\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "ok", res.stderr
