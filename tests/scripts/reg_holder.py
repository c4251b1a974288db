"""Own a live run, then wait to be killed.

usage: reg_holder.py DATA_DIR MODE PAUSE SCRIPT [ARGS...]

Opens a RunEngine on DATA_DIR, starts tests/scripts/SCRIPT (with ARGS) in MODE (async or
threaded), waits for the script to print "ready", optionally pauses the run (PAUSE=1),
then prints one JSON line {"run_id", "pid", "pids"} (pids: every "pid N" the script
printed) and sleeps until it is killed.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from prismq_desktop.core import RunEngine, RunSpec, RunStatus

HERE = Path(__file__).parent


async def main() -> int:
    home, mode, pause, script, *args = sys.argv[1:]
    engine = RunEngine(home)
    spec = RunSpec(target=str(HERE / script), args=tuple(args), interpreter=sys.executable, name="held")
    handle = await engine.start(spec, mode=mode)
    deadline = time.monotonic() + 30
    while True:
        lines = [line for _, line in handle.capture.tail_lines()] if handle.capture else []
        if "ready" in lines and handle.run.pid:
            break
        if handle.done or time.monotonic() > deadline:
            print(json.dumps({"error": f"run ended or never got ready: {handle.run.outcome} {lines}"}), flush=True)
            return 1
        await asyncio.sleep(0.01)
    if pause == "1":
        assert engine.pause(handle.id), "pause failed"
        assert engine.registry.get(handle.id).status is RunStatus.PAUSED
    pids = [int(line.split()[1]) for line in lines if line.startswith("pid ")]
    print(json.dumps({"run_id": handle.id, "pid": handle.run.pid, "pids": pids}), flush=True)
    await asyncio.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
