"""Secret-looking values are masked wherever they are shown: names, URLs with credentials, options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prismq_desktop.core.process.logfile import read_log
from prismq_desktop.core.secrets import MASK, looks_secret, masked_argv, masked_env, masked_spec_dict

PY = sys.executable


@pytest.mark.parametrize("name", ["API_TOKEN", "GITHUB_PAT", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "OPENAI_API_KEY",
                                  "SSH_PASSPHRASE", "npm_auth", "MY_PWD", "STRIPE_KEY", "GOOGLE_CREDENTIALS"])
def test_secret_looking_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "MODE", "KEYBOARD_LAYOUT", "PATTERN", "MONKEY_COUNT"])
def test_ordinary_names_are_not_masked(name):
    assert not looks_secret(name)


def test_urls_options_and_env_are_masked():
    env = masked_env({"DATABASE_URL": "postgres://app:hunter2@db:5432/x", "GITHUB_PAT": "ghp_123", "MODE": "prod",
                      "GONE": None})
    assert env == {"DATABASE_URL": f"postgres://app:{MASK}@db:5432/x", "GITHUB_PAT": MASK, "MODE": "prod", "GONE": None}
    argv = masked_argv(["deploy.py", "--password=hunter2", "--token", "abc", "--db", "mysql://u:pw@h/d", "--name", "x"])
    assert argv == ["deploy.py", f"--password={MASK}", "--token", MASK, "--db", f"mysql://u:{MASK}@h/d", "--name", "x"]
    spec = masked_spec_dict({"target": "a.py", "args": ["--api-key=k1"], "env": {"X_TOKEN": "t"}})
    assert spec["args"] == [f"--api-key={MASK}"] and spec["env"] == {"X_TOKEN": MASK}


def test_json_output_and_the_log_never_show_a_secret_given_on_the_command_line(home):
    secret = "s3cr3t-Value-42"
    out = subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), "run", "--env", f"GITHUB_PAT={secret}",
                          "--env", f"DATABASE_URL=postgres://app:{secret}@db/x", PY, "--", "-S", "-c", "print('ok')",
                          f"--password={secret}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr
    hist = subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), "history", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0 and secret not in hist.stdout
    log_path = json.loads(hist.stdout)[0]["log_path"]
    meta = [r.data.decode() for r, _ in read_log(log_path) if r.stream.value == "m"]
    assert meta and not any(secret in m for m in meta)


def _stored_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("registry.sqlite3"))


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_the_registry_never_holds_a_secret_value_and_the_child_still_gets_it(home, tmp_path):
    secret = "hunter2-Pat-77"
    seen = tmp_path / "seen.txt"
    code = f"import os; open({str(seen)!r}, 'w').write(os.environ['GITHUB_PAT'])"
    out = subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), "run", "--env", f"GITHUB_PAT={secret}",
                          "--env", "MODE=plain-value", PY, "--", "-S", "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert seen.read_text() == secret  # the child got the real value
    stored = _stored_bytes(home)
    assert secret.encode() not in stored and b"plain-value" in stored  # only the secret was kept out
    vault = home / "secrets.json"
    assert vault.exists() and (vault.stat().st_mode & 0o777) == 0o600 and secret in vault.read_text()
    # a rerun of the stored spec (as History's Rerun does) gets the real value again
    seen.unlink()
    from prismq_desktop.core import RunEngine
    from prismq_desktop.core.store import RunQuery

    engine = RunEngine(home)
    try:
        (run,) = engine.registry.query(RunQuery(limit=1))
        assert secret not in json.dumps(run.spec.to_dict())  # the snapshot carries the reference
        again = engine.run_blocking(run.spec)
        assert again.run.outcome.exit_code == 0 and seen.read_text() == secret
    finally:
        engine.close()
    assert secret.encode() not in _stored_bytes(home)


def test_a_schedule_stores_a_reference_not_the_value(home):
    secret = "sched-S3cret-9"
    from prismq_desktop.core.models import RunSpec
    from prismq_desktop.core.store.registry import RunRegistry

    with RunRegistry(home / "registry.sqlite3") as reg:
        sid = reg.add_schedule({"name": "with-secret", "spec": RunSpec(PY, env={"DB_PASSWORD": secret}).to_dict(),
                                "trigger": {"kind": "interval", "seconds": 3600.0, "start": 0.0}})
        row = reg.get_schedule(sid)
        assert secret not in json.dumps(row["spec"]) and row["spec"]["env"]["DB_PASSWORD"].startswith("prismq-secret:")
        assert reg.vault.reveal_env(row["spec"]["env"]) == {"DB_PASSWORD": secret}
    assert secret.encode() not in _stored_bytes(home)
