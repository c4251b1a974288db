"""Create the file given as the only argument (proves a run really started)."""

import sys
from pathlib import Path

Path(sys.argv[1]).write_text("started\n")
