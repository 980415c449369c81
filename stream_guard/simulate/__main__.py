"""`python -m stream_guard.simulate simulate --days 7 --seed 1 --out sim/`."""

import sys

from stream_guard.simulate.cli import main

if __name__ == "__main__":
    sys.exit(main())
