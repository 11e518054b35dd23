"""``python -m aiforge``: the same command line as the ``aiforge`` script (used to start server processes)."""

import sys

if __name__ == "__main__":
    try:
        from aiforge.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the command line loads: nothing has started yet
        import os

        sys.stderr.write("Interrupted: stopped at your request; nothing was written.\n")
        sys.stderr.flush()
        os._exit(130)
    main()
