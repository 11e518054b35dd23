"""``python -m aiforge``: the same command line as the ``aiforge`` script (used to start server processes)."""

from aiforge.cli import main

if __name__ == "__main__":
    main()
