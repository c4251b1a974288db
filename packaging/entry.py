"""PyInstaller entry point: the same `main()` as the console script.

The windowed EXE (console=False) has no stdout/stderr: "usually the case for Windows GUI apps
that aren't connected to a console" (docs.python.org, sys.__stdout__), so a command typed at it
(`prismq-desktop.exe run x.py`) would raise AttributeError on the first write. They go to the null
device there instead - the run is still recorded, its output in its log - and the console EXE
beside it, prismq-desktop-cli.exe, is the one that prints (packaging/prismq-desktop.spec).
"""

import os
import sys

from prismq_desktop.cli import main

if __name__ == "__main__":
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the process
    sys.exit(main())
