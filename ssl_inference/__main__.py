"""Command line entry point: ``python -m ssl_inference demo`` (see :mod:`ssl_inference.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
