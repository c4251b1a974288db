"""`python -m prismq_desktop` is the same as the `prismq-desktop` command."""

import sys

from prismq_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
