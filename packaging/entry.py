"""PyInstaller entry point: the same `main()` as the console script."""

import sys

from prismq_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
