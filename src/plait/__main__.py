"""``python -m plait``: the ``plait`` command line."""

import sys

from plait.cli import main

if __name__ == "__main__":
    sys.exit(main())
