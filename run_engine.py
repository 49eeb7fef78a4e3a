"""Entry point of the callback engine (see README)."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
