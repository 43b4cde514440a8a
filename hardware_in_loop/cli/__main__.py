"""``python -m hardware_in_loop.cli``: the ``pcmsim`` command line."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
