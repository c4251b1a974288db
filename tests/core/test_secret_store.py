"""Secret values in the OS credential store (a real Secret Service), else secrets.json with one notice.

The `secret_service` fixture starts a private D-Bus session bus (`dbus-daemon --session`) and a
real `gnome-keyring-daemon` on it, unlocked with a test password; keyring's SecretService
backend (SecretStorage over jeepney) talks to it. If it cannot start, the test fails — the
tools are part of CI (`.ci/run` installs gnome-keyring and dbus). Both daemons, and any the bus
activated, are stopped at the end (the suite's leftover-process check holds).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import RunEngine
from prismq_desktop.core import secret_store as ss
from prismq_desktop.core.secrets import KEYRING_REF_PREFIX, REF_PREFIX, SecretUnavailable, SecretVault
from prismq_desktop.core.services.history import delete_runs
from prismq_desktop.core.store.registry import RunRegistry
from tests.helpers import tmpfs

PY = sys.executable
SECRET = "s3cr3t-value"
SCRIPTS = Path(__file__).parent.parent / "scripts"
# the child writes the value it received (never to stdout, so only a leak could put it in a log)
CHILD = "import os, sys; open(sys.argv[1], 'a').write(os.environ['API_TOKEN'] + '\\n')"
NOTICE = "secret values are kept in"


class SecretService:
    """A real Secret Service of one test's own: dbus-daemon + gnome-keyring-daemon, unlocked."""

    PASSWORD = "prismq-test-keyring-pw"

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.monkeypatch = monkeypatch
        self.bus: subprocess.Popen[str] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.address = ""
        (base / "run").mkdir(parents=True, mode=0o700)
        for name in ("data", "config"):
            (base / name).mkdir(mode=0o700)
        # the daemons (and everything the bus activates) see only this: no display for a prompt
        self.env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHON_KEYRING_BACKEND")}
        self.env.update(HOME=str(base), XDG_DATA_HOME=str(base / "data"), XDG_RUNTIME_DIR=str(base / "run"),
                        XDG_CONFIG_HOME=str(base / "config"))

    def start(self) -> SecretService:
        for tool in ("dbus-daemon", "gnome-keyring-daemon"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed: the keyring tests need a real Secret Service "
                            "(apt-get install dbus-daemon gnome-keyring; .ci/run does)")
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        assert self.bus.stdout is not None
        ready, _, _ = select.select([self.bus.stdout], [], [], 10)
        self.address = self.bus.stdout.readline().strip() if ready else ""
        if not self.address:
            self.stop()
            pytest.fail("dbus-daemon --session did not print its address")
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        for key in ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DBUS_SESSION_BUS_ADDRESS"):
            self.monkeypatch.setenv(key, self.env[key])  # this process and the CLI processes it starts
        self.monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        self.monkeypatch.setenv("PRISMQ_SECRET_STORE", "auto")
        self.start_keyring()
        return self

    def start_keyring(self) -> None:
        self.daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       env=self.env)
        assert self.daemon.stdin is not None
        self.daemon.stdin.write(self.PASSWORD.encode())
        self.daemon.stdin.close()
        deadline = time.monotonic() + 15
        why = "not started"
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                why = f"exited {self.daemon.returncode}: {self.daemon.stderr.read().decode(errors='replace')[-500:]}"
                break
            try:
                if not self.default_collection_locked():
                    return
                why = "its default collection is still locked"
            except Exception as exc:  # noqa: BLE001 - not up yet: say why if it never comes
                why = repr(exc)
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gnome-keyring-daemon did not serve an unlocked Secret Service: {why}")

    def _connection(self):  # noqa: ANN202 - a jeepney connection to this bus
        from jeepney.io.blocking import open_dbus_connection

        return open_dbus_connection(bus=self.address)

    def default_collection_locked(self) -> bool:
        import secretstorage
        from jeepney.bus_messages import message_bus

        with self._connection() as conn:
            owned = conn.send_and_get_reply(message_bus.NameHasOwner("org.freedesktop.secrets"), timeout=2).body[0]
            if not owned:  # asking for the collection now would activate a second (locked) daemon
                raise RuntimeError("org.freedesktop.secrets has no owner yet")
            return bool(secretstorage.get_default_collection(conn).is_locked())

    def values(self, service: str) -> dict[str, str]:
        """username -> value of every item this service name holds, read over D-Bus."""
        import secretstorage

        with self._connection() as conn:
            return {item.get_attributes()["username"]: item.get_secret().decode()
                    for item in secretstorage.search_items(conn, {"service": service})}

    def kill_keyring(self) -> None:
        """SIGKILL the daemon (the bus stays: the next call activates a fresh, locked one)."""
        if self.daemon is not None:
            self.daemon.kill()
            self.daemon.wait(10)
            self.daemon = None

    def stop(self) -> None:
        self.kill_keyring()
        if self.bus is not None:
            self.bus.terminate()
            try:
                self.bus.wait(10)
            except subprocess.TimeoutExpired:
                self.bus.kill()
                self.bus.wait(10)
            for pipe in (self.bus.stdout, self.bus.stderr):
                if pipe is not None:
                    pipe.close()
            self.bus = None
        # daemons the bus activated (a re-started, locked gnome-keyring) exit with it: wait, then make sure
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._activated():
            time.sleep(0.05)
        for proc in self._activated():
            with contextlib.suppress(psutil.Error):
                proc.kill()
                proc.wait(5)

    def _activated(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE and self.env.get("XDG_RUNTIME_DIR", "") in " ".join(
                        f"{k}={v}" for k, v in proc.environ().items()):
                    found.append(proc)
        return found


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    service = SecretService(tmp_path / "keyring", monkeypatch)
    try:
        yield service.start()
    finally:
        service.stop()


def cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def leaks(root: Path, secret: str = SECRET) -> list[str]:
    """Every file under `root` whose bytes contain `secret`."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def stored_env(home: Path, table: str = "runs") -> list[dict[str, str]]:
    with contextlib.closing(sqlite3.connect(home / "registry.sqlite3")) as db:
        return [json.loads(spec)["env"] for (spec,) in db.execute(f"SELECT spec FROM {table} ORDER BY id")]


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOTICE in line or "credential store" in line]


# ---------------------------------------------------------------------------- with a real Secret Service


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_a_cli_run_keeps_the_value_in_the_secret_service_and_reruns_and_schedule_fires_get_it(
        secret_service, home, tmp_path):
    seen = tmp_path / "seen.txt"
    out = cli(home, "run", "--env", f"API_TOKEN={SECRET}", "--env", "MODE=plain-value", PY, "--", "-S", "-c", CHILD,
              str(seen))
    assert out.returncode == 0, out.stderr
    assert seen.read_text() == SECRET + "\n"  # the child got the real value
    assert SECRET not in out.stdout + out.stderr and notices(out.stderr) == []  # the OS store worked: nothing to tell
    (env,) = stored_env(home)
    assert env["API_TOKEN"].startswith(KEYRING_REF_PREFIX) and env["MODE"] == "plain-value"
    service = ss.service_name(home)
    assert SECRET in secret_service.values(service).values()  # really in the Secret Service, under this data dir
    assert not (home / "secrets.json").exists()

    hist = cli(home, "history", "--json")
    assert hist.returncode == 0 and SECRET not in hist.stdout and json.loads(hist.stdout)[0]["status"] == "done"

    # a schedule stores the reference; a headless scheduler (a fresh process) fires it with the value
    fired = tmp_path / "fired.txt"
    add = cli(home, "schedule", "add", "--every", "1s", "--env", f"API_TOKEN={SECRET}", "tick", PY, "--", "-S", "-c",
              CHILD, str(fired))
    assert add.returncode == 0, add.stderr
    listed = cli(home, "schedule", "list", "--json")
    assert listed.returncode == 0 and SECRET not in listed.stdout and json.loads(listed.stdout)[0]["name"] == "tick"
    assert stored_env(home, "schedules")[0]["API_TOKEN"].startswith(KEYRING_REF_PREFIX)
    sched = subprocess.Popen([PY, "-m", "prismq_desktop", "--data-dir", str(home), "scheduler"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (fired.exists() and fired.read_text()):
            time.sleep(0.1)
    finally:
        sched.send_signal(signal.SIGTERM)
        sched_out, sched_err = sched.communicate(timeout=30)
    assert fired.exists() and fired.read_text().splitlines()[0] == SECRET, sched_err
    assert SECRET not in sched_out + sched_err

    # a rerun of the stored spec (History's Rerun) in this process: a fresh vault reads the Secret Service
    engine = RunEngine(home)
    try:
        first = engine.registry.get(1)
        assert first is not None and first.spec.env["API_TOKEN"].startswith(KEYRING_REF_PREFIX)
        again = engine.run_blocking(first.spec)
        assert again.run.outcome is not None and again.run.outcome.exit_code == 0
    finally:
        engine.close()
    assert seen.read_text() == f"{SECRET}\n{SECRET}\n"

    assert leaks(home) == []  # registry (+ wal, shm), logs, lock file: no value anywhere in the data dir
    assert leaks(secret_service.base) == []  # and the keyring keeps its own file encrypted


def test_api_runs_and_a_periodic_schedule_fired_by_another_orchestrator_get_the_value(secret_service, home, tmp_path):
    import asyncio

    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.core.patterns import TaskPattern

    seen, fired = tmp_path / "seen.txt", tmp_path / "fired.txt"

    async def add() -> None:
        async with TaskOrchestrator(home) as orch:
            result = await orch.execute(PY, ["-S", "-c", CHILD, str(seen)], env={"API_TOKEN": SECRET})
            assert result.exit_code == 0 and seen.read_text() == SECRET + "\n"
            res = await orch.execute(PY, ["-S", "-c", CHILD, str(fired)], env={"API_TOKEN": SECRET},
                                     pattern=TaskPattern.PERIODIC, interval_seconds=3600, task_name="hourly")
            assert res.schedule_id is not None

    async def fire() -> None:  # a second orchestrator: its vault has never seen the value
        async with TaskOrchestrator(home) as orch:
            (sched,) = orch.scheduler.all()
            run_id = orch.scheduler.run_now(sched.id)
            assert run_id is not None
            assert (await orch.wait(run_id, timeout=30)).exit_code == 0

    asyncio.run(add())
    asyncio.run(fire())
    assert fired.read_text() == SECRET + "\n"
    assert all(e["API_TOKEN"].startswith(KEYRING_REF_PREFIX) for e in stored_env(home) + stored_env(home, "schedules"))
    assert leaks(home) == [] and not (home / "secrets.json").exists()


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_the_os_store_dying_between_writes_sends_the_value_to_the_file_and_nothing_is_lost(
        secret_service, home, tmp_path):
    told: list[str] = []
    reg = RunRegistry(home / "registry.sqlite3")
    reg.vault.on_notice = told.append
    first = reg.vault.protect_env({"API_TOKEN": "first-Value-1"})
    assert first is not None and first["API_TOKEN"].startswith(KEYRING_REF_PREFIX) and told == []

    secret_service.kill_keyring()  # SIGKILL: the bus activates a fresh gnome-keyring, which is locked
    second = reg.vault.protect_env({"DB_PASSWORD": "second-Value-2"})
    assert second is not None and second["DB_PASSWORD"].startswith(REF_PREFIX)
    assert not second["DB_PASSWORD"].startswith(KEYRING_REF_PREFIX)
    assert len(told) == 1 and "OS credential store failed" in told[0] and "secrets.json" in told[0], told
    assert "second-Value-2" not in told[0]
    vault_file = home / "secrets.json"
    assert (vault_file.stat().st_mode & 0o777) == 0o600 and "second-Value-2" in vault_file.read_text()
    assert "first-Value-1" not in vault_file.read_text()
    third = reg.vault.protect_env({"X_TOKEN": "third-Value-3"})  # still failing: file, no second notice
    assert third is not None and not third["X_TOKEN"].startswith(KEYRING_REF_PREFIX) and len(told) == 1
    reg.close()

    # a run through the engine while the store is locked: the child gets the value, the file keeps it
    seen = tmp_path / "seen.txt"
    engine = RunEngine(home)
    try:
        from prismq_desktop.core.models import RunSpec

        handle = engine.run_blocking(RunSpec(PY, ["-S", "-c", CHILD, str(seen)], env={"API_TOKEN": "fourth-Value-4"}))
        assert handle.run.outcome is not None and handle.run.outcome.exit_code == 0
        assert "fourth-Value-4" in vault_file.read_text()
    finally:
        engine.close()
    assert seen.read_text() == "fourth-Value-4\n"

    # D-Bus gone altogether: a new write goes to the file; the keyring reference cannot be read, in one line
    secret_service.stop()
    with RunRegistry(home / "registry.sqlite3") as gone:
        fifth = gone.vault.protect_env({"API_TOKEN": "fifth-Value-5"})
        assert fifth is not None and not fifth["API_TOKEN"].startswith(KEYRING_REF_PREFIX)
        with pytest.raises(SecretUnavailable) as err:
            gone.vault.reveal_env(first)
        assert "API_TOKEN" in str(err.value) and "\n" not in str(err.value) and "first-Value-1" not in str(err.value)

    # the Secret Service back (same keyring files, unlocked again): every value is still there
    secret_service.start()
    with RunRegistry(home / "registry.sqlite3") as back:
        revealed = {**back.vault.reveal_env(first), **back.vault.reveal_env(second), **back.vault.reveal_env(third),
                    **back.vault.reveal_env(fifth)}
    assert revealed == {"API_TOKEN": "fifth-Value-5", "DB_PASSWORD": "second-Value-2", "X_TOKEN": "third-Value-3"}
    with RunRegistry(home / "registry.sqlite3") as back:
        assert back.vault.reveal_env(first) == {"API_TOKEN": "first-Value-1"}
    assert leaks(home, "first-Value-1") == []


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_a_frozen_secret_service_costs_the_timeout_not_the_app(secret_service, home):
    assert secret_service.daemon is not None
    os.kill(secret_service.daemon.pid, signal.SIGSTOP)  # it takes the D-Bus call and never answers
    try:
        told: list[str] = []
        vault = SecretVault(home / "secrets.json", timeout=1.0)
        vault.on_notice = told.append
        started = time.monotonic()
        out = vault.protect_env({"API_TOKEN": SECRET})
        took = time.monotonic() - started
    finally:
        os.kill(secret_service.daemon.pid, signal.SIGCONT)
    assert out is not None and not out["API_TOKEN"].startswith(KEYRING_REF_PREFIX)
    assert took < 5, took
    assert len(told) == 1 and "did not answer within 1 s" in told[0]
    assert vault.reveal_env(out) == {"API_TOKEN": SECRET}


def test_forced_file_store_and_a_bad_setting(secret_service, home, tmp_path, monkeypatch):
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("PRISMQ_SECRET_STORE", "file")
    out = cli(home, "run", "--env", f"API_TOKEN={SECRET}", PY, "--", "-S", "-c", CHILD, str(seen))
    assert out.returncode == 0 and notices(out.stderr) == []  # chosen: nothing to tell
    assert SECRET in (home / "secrets.json").read_text() and secret_service.values(ss.service_name(home)) == {}

    monkeypatch.setenv("PRISMQ_SECRET_STORE", "Sometimes")
    out = cli(home, "run", "--env", "API_TOKEN=other-Value", PY, "--", "-S", "-c", CHILD, str(seen))
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stderr.splitlines() if "PRISMQ_SECRET_STORE" in x]
    assert "'Sometimes' is not one of auto, keyring, file; using auto" in line
    assert "other-Value" in secret_service.values(ss.service_name(home)).values()  # auto: the OS store
    assert seen.read_text() == f"{SECRET}\nother-Value\n"


def test_deleting_runs_and_schedules_releases_values_no_longer_used(secret_service, home):
    from prismq_desktop.core.models import RunSpec

    service = ss.service_name(home)
    engine = RunEngine(home)
    try:
        ids = [engine.run_blocking(RunSpec(PY, ["-S", "-c", "pass"], env={"API_TOKEN": value})).id
               for value in ("shared-Value", "shared-Value", "own-Value")]
        engine.registry.add_schedule({"name": "s", "spec": RunSpec(PY, env={"API_TOKEN": "sched-Value"}).to_dict(),
                                      "trigger": {"kind": "interval", "seconds": 3600.0, "start": 0.0}})
        held = set(secret_service.values(service).values())
        assert {"shared-Value", "own-Value", "sched-Value"} <= held
        delete_runs(engine.registry, [ids[0]])
        assert "shared-Value" in secret_service.values(service).values()  # run 2 still refers to it
        delete_runs(engine.registry, ids[1:])
        left = set(secret_service.values(service).values())
        assert "shared-Value" not in left and "own-Value" not in left and "sched-Value" in left
        (sched,) = engine.registry.list_schedules()
        assert engine.registry.delete_schedule(sched["id"])
        assert "sched-Value" not in secret_service.values(service).values()
        # with the store gone, deleting still works (the value stays behind, logged)
        keep = engine.run_blocking(RunSpec(PY, ["-S", "-c", "pass"], env={"API_TOKEN": "stays-Value"})).id
        secret_service.stop()
        assert delete_runs(engine.registry, [keep]).runs == 1
        assert engine.registry.get(keep) is None
    finally:
        engine.close()


def test_a_value_another_process_released_is_stored_again_by_the_next_run(secret_service, home, monkeypatch):
    """A long-lived process (the window) remembers what it stored; when another one deleted the last
    run using a value (so its store dropped it), the next new run puts it back."""
    from prismq_desktop.core import secrets
    from prismq_desktop.core.models import RunSpec

    monkeypatch.setattr(secrets, "REWRITE_AFTER", 0.0)  # (5 s in the app: a burst of runs stores it once)
    service = ss.service_name(home)
    window = RunEngine(home)
    try:
        first = window.run_blocking(RunSpec(PY, ["-S", "-c", "pass"], env={"API_TOKEN": SECRET})).id
        with RunRegistry(home / "registry.sqlite3") as other:
            assert delete_runs(other, [first]).runs == 1
        assert SECRET not in secret_service.values(service).values()  # released: nothing refers to it
        second = window.run_blocking(RunSpec(PY, ["-S", "-c", "pass"], env={"API_TOKEN": SECRET}))
        assert second.run.outcome is not None and second.run.outcome.exit_code == 0
        assert SECRET in secret_service.values(service).values()
        stored = window.registry.get(second.id)
        assert stored is not None
    finally:
        window.close()
    with RunRegistry(home / "registry.sqlite3") as fresh:
        assert fresh.vault.reveal_env(stored.spec.env) == {"API_TOKEN": SECRET}


def test_absurd_values_round_trip(secret_service, home):
    vault = SecretVault(home / "secrets.json")
    assert vault.store_kind == "keyring" and SecretVault(home / "secrets.json", store="file").store_kind == "file"
    told: list[str] = []
    vault.on_notice = told.append
    values = {"EMPTY_TOKEN": "", "BIG_TOKEN": "x" * 65536 + "-end", "UNI_PASSWORD": "päss wörd ✓ \t'\"\\",
              "SURROGATE_TOKEN": "bad-\udcff-bytes"}
    refs = vault.protect_env(values)
    assert refs is not None
    kinds = {k: v.startswith(KEYRING_REF_PREFIX) for k, v in refs.items()}
    assert kinds["BIG_TOKEN"] and kinds["UNI_PASSWORD"] and kinds["EMPTY_TOKEN"]
    assert not kinds["SURROGATE_TOKEN"]  # not UTF-8 text: the Secret Service cannot take it, the file does
    assert len(told) == 1
    assert SecretVault(home / "secrets.json").reveal_env(refs) == values  # a fresh vault: from the stores


# ---------------------------------------------------------------------------- no OS store


def _no_store_env(tmp_path: Path, variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.update(PRISMQ_SECRET_STORE="auto", XDG_CONFIG_HOME=str(tmp_path / "no-config"),
               DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path / 'no-bus-here'}")
    if variant == "fail":
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    elif variant == "null":
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    elif variant in ("plaintext", "third-party"):
        if variant == "third-party":
            env["PLAIN_KEYRING_PRIORITY"] = "9"  # confident, but not one of keyring's OS backends
        env.update(PYTHON_KEYRING_BACKEND="plain_keyring.PlainKeyring", PLAIN_KEYRING_FILE=str(tmp_path / "plain.json"),
                   PYTHONPATH=os.pathsep.join([str(SCRIPTS), env.get("PYTHONPATH", "")]))
    return env


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("variant", ["no-bus", "fail", "null", "plaintext", "third-party"])
def test_without_an_os_store_values_go_to_the_file_with_exactly_one_notice(home, tmp_path, variant):
    seen = tmp_path / "seen.txt"
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['API_TOKEN'] + '|' + os.environ['DB_PASSWORD'])"
    out = cli(home, "run", "--env", f"API_TOKEN={SECRET}", "--env", "DB_PASSWORD=pw-Value-2", PY, "--", "-S", "-c",
              code, str(seen), env=_no_store_env(tmp_path, variant))
    assert out.returncode == 0, out.stderr
    assert seen.read_text() == f"{SECRET}|pw-Value-2"
    lines = notices(out.stderr)
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("prismq-desktop: ") and str(home / "secrets.json") in lines[0]
    assert "Traceback" not in out.stderr and SECRET not in out.stderr
    if variant in ("plaintext", "third-party"):
        assert "plain_keyring.PlainKeyring is not one" in lines[0] and not (tmp_path / "plain.json").exists()
    vault_file = home / "secrets.json"
    assert (vault_file.stat().st_mode & 0o777) == 0o600
    assert SECRET in vault_file.read_text() and "pw-Value-2" in vault_file.read_text()
    assert all(not v.startswith(KEYRING_REF_PREFIX) for v in stored_env(home)[0].values() if v.startswith(REF_PREFIX))
    assert [p for p in leaks(home) if not p.endswith("secrets.json")] == []


def test_the_engine_announces_the_file_store_as_a_notice_once(home, tmp_path, monkeypatch):
    """The window shows a Notice in its status bar; the engine publishes the vault's one sentence."""
    from prismq_desktop.core.events import Notice
    from prismq_desktop.core.models import RunSpec

    for key, value in _no_store_env(tmp_path, "no-bus").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    engine = RunEngine(home)
    seen: list[Notice] = []
    engine.bus.subscribe_sync(lambda ev: isinstance(ev, Notice) and seen.append(ev))
    try:
        for value in ("one-Value", "two-Value"):
            handle = engine.run_blocking(RunSpec(PY, ["-S", "-c", "pass"], env={"API_TOKEN": value}))
            assert handle.run.outcome is not None and handle.run.outcome.exit_code == 0
    finally:
        engine.close()
    assert len(seen) == 1 and seen[0].level == "warning" and NOTICE in seen[0].message, seen
    assert str(home / "secrets.json") in seen[0].message


def test_forcing_keyring_accepts_a_backend_auto_refuses(home, tmp_path):
    env = _no_store_env(tmp_path, "plaintext")
    env["PRISMQ_SECRET_STORE"] = "keyring"
    seen = tmp_path / "seen.txt"
    out = cli(home, "run", "--env", f"API_TOKEN={SECRET}", PY, "--", "-S", "-c", CHILD, str(seen), env=env)
    assert out.returncode == 0 and notices(out.stderr) == [], out.stderr
    assert seen.read_text() == SECRET + "\n" and SECRET in (tmp_path / "plain.json").read_text()
    assert not (home / "secrets.json").exists() and stored_env(home)[0]["API_TOKEN"].startswith(KEYRING_REF_PREFIX)


def test_a_run_without_secrets_never_loads_keyring(home):
    code = ("import sys; from prismq_desktop.core import RunEngine, RunSpec\n"
            f"e = RunEngine({str(home)!r}); h = e.run_blocking(RunSpec({PY!r}, ['-S', '-c', 'pass'], env={{'MODE': 'x'}}))\n"
            "e.close(); print(h.run.outcome.exit_code, 'keyring' in sys.modules)")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PRISMQ_SECRET_STORE": "auto"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "False"]


# ---------------------------------------------------------------------------- the file store


def test_two_vaults_on_one_file_never_drop_each_others_values(home):
    a, b = SecretVault(home / "secrets.json"), SecretVault(home / "secrets.json")
    ra = a.protect_env({"A_TOKEN": "value-a"})
    rb = b.protect_env({"B_TOKEN": "value-b"})
    rc = a.protect_env({"C_TOKEN": "value-c"})  # `a` read the file before `b` wrote: it must merge, not overwrite
    fresh = SecretVault(home / "secrets.json")
    assert {**fresh.reveal_env(ra), **fresh.reveal_env(rb), **fresh.reveal_env(rc)} == {
        "A_TOKEN": "value-a", "B_TOKEN": "value-b", "C_TOKEN": "value-c"}


def test_concurrent_processes_keep_every_value(home):
    code = ("import sys; from prismq_desktop.core.secrets import SecretVault\n"
            "v = SecretVault(sys.argv[1])\n"
            "for i in range(25): v.protect_env({'API_TOKEN': f'p{sys.argv[2]}-{i}'})\n")
    procs = [subprocess.Popen([PY, "-c", code, str(home / "secrets.json"), str(n)]) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    values = set(json.loads((home / "secrets.json").read_text()).values())
    assert values == {f"p{n}-{i}" for n in range(4) for i in range(25)}


def test_a_file_written_by_the_previous_version_is_still_read(home):
    import hashlib

    old_ref = REF_PREFIX + hashlib.sha256(b"API_TOKEN\0old-Value").hexdigest()[:24]
    (home / "secrets.json").write_text(json.dumps({old_ref: "old-Value"}))  # what 2cf2af1's vault wrote
    vault = SecretVault(home / "secrets.json")
    assert vault.reveal_env({"API_TOKEN": old_ref, "MODE": "x"}) == {"API_TOKEN": "old-Value", "MODE": "x"}
    assert vault.protect_env({"API_TOKEN": "old-Value"}) == {"API_TOKEN": old_ref}  # the same reference again
    assert json.loads((home / "secrets.json").read_text()) == {old_ref: "old-Value"}
    assert vault.forget({old_ref}) == 1 and json.loads((home / "secrets.json").read_text()) == {}


def test_a_damaged_file_is_moved_aside_not_overwritten(home):
    vault_file = home / "secrets.json"
    vault_file.write_text('{"abc": "kept-by-hand", ')  # torn by a hand edit
    refs = SecretVault(vault_file).protect_env({"API_TOKEN": SECRET})
    assert refs is not None and SecretVault(vault_file).reveal_env(refs) == {"API_TOKEN": SECRET}
    (aside,) = home.glob("secrets.json.unreadable-*")
    assert "kept-by-hand" in aside.read_text()


def test_a_full_disk_fails_the_write_in_one_line_and_keeps_the_old_file(tmp_path):
    with tmpfs(tmp_path / "small", "64k") as where:
        vault = SecretVault(where / "secrets.json")
        first = vault.protect_env({"API_TOKEN": "small-Value"})
        with pytest.raises(OSError) as err:
            vault.protect_env({"BIG_TOKEN": "y" * 200_000})
        assert "cannot be saved" in str(err.value) and "\n" not in str(err.value)
        assert [p.name for p in where.iterdir() if p.name.endswith(".tmp")] == []
        assert SecretVault(where / "secrets.json").reveal_env(first) == {"API_TOKEN": "small-Value"}
