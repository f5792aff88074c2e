"""`python -m studies`: see `studies.surfaces.cli`."""

import sys

from studies.surfaces.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m studies"))
