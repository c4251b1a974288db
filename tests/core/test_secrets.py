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
