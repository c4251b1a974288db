"""Process execution: turning a RunSpec into a process tree, reading its output, stopping it.

launch.py     RunSpec -> `Launch` (argv, env, cwd), or a `LaunchError`
executor.py   the seam: the `Executor` protocol, `Job`, and mode selection
local.py      `SubprocessWrapper`, the local executor (ASYNC, THREADED, LOCAL, DRY_RUN)
supervisor.py `Supervisor`: batches, timeouts, stopping and the outcome of a started process
pipes.py      reading a child's pipes (shared with the worker pool)
logfile.py    the run's log file (`LogWriter`, `read_log`, `Stream`)
capture.py    `OutputCapture`: line assembly, tail, pending batches (output.py re-exports both)
tree.py       `ProcessTree`: stop, kill, pause, resume a whole tree (winjob.py on Windows)
"""

from prismq_desktop.core.process.capture import LineAssembler, OutputCapture, OutputChunk
from prismq_desktop.core.process.executor import ENV_MODE, Executor, Job, ModeError, choose_mode, requested_mode
from prismq_desktop.core.process.launch import Launch, LaunchError, resolve
from prismq_desktop.core.process.local import SubprocessWrapper
from prismq_desktop.core.process.logfile import LogWriter, Stream, read_log
from prismq_desktop.core.process.supervisor import Supervisor
from prismq_desktop.core.process.tree import ProcessTree

__all__ = [
    "ENV_MODE",
    "Executor",
    "Job",
    "Launch",
    "LaunchError",
    "LineAssembler",
    "LogWriter",
    "ModeError",
    "OutputCapture",
    "OutputChunk",
    "ProcessTree",
    "Stream",
    "SubprocessWrapper",
    "Supervisor",
    "choose_mode",
    "read_log",
    "requested_mode",
    "resolve",
]
