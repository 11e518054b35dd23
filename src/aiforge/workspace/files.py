"""Writing to a path the user named (``--out``, ``--json``, ``--plot``): written to, never replaced by something else.

Files aiforge owns in its workspace are always staged and renamed into place (:func:`write_atomic`). A path the user
names gets the same treatment when it is new or a regular file, so a reader never sees half a report. Anything else
that already exists there is the user's plumbing and is written through instead: a symlink keeps pointing where it
did and its target gets the bytes (``/dev/stdout`` is such a link), a FIFO gets them down the pipe, a character
device gets them as it would from ``cat``. ``-`` is standard output.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from aiforge.workspace.catalog import write_atomic

__all__ = ["STDOUT", "write_output"]

#: The name that means standard output, as in most Unix tools.
STDOUT = "-"


def write_output(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to a path the user named, the way a careful Unix tool does.

    Parameters
    ----------
    path : str or path
        ``-`` for standard output. A new path or an existing regular file is written to a temporary file in the same
        folder and renamed into place (missing folders are created). An existing symlink, FIFO or device is opened
        and written to, so it stays what it is: the symlink's target (created if missing) gets the data.
    data : str or bytes
        Text is written as UTF-8.

    Returns
    -------
    Path
        ``path`` as given (``Path("-")`` for standard output).

    Raises
    ------
    IsADirectoryError
        When ``path`` is a folder or a symlink to one.
    OSError
        When the file cannot be written; the caller names what it was writing.

    Examples
    --------
    >>> import tempfile
    >>> out = write_output(os.path.join(tempfile.mkdtemp(), "report.json"), '{"rows": 3}')
    >>> out.read_text()
    '{"rows": 3}'
    >>> _ = write_output("-", "to stdout\\n")
    to stdout
    """
    if os.fspath(path) == STDOUT:
        _write_stdout(data)
        return Path(STDOUT)
    target = Path(path)
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None or stat.S_ISREG(mode):
        write_atomic(target, data)
        return target
    if stat.S_ISDIR(mode) or (stat.S_ISLNK(mode) and target.is_dir()):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    # Not a file of ours to replace: open what is there (following a symlink) and write into it.
    with open(target, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return target


def _write_stdout(data: str | bytes) -> None:
    stream = sys.stdout
    if isinstance(data, str):
        stream.write(data)
    else:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data)
            buffer.flush()
        else:  # a text-only stream (a notebook, a test runner): decode rather than fail
            stream.write(data.decode("utf-8", "replace"))
    stream.flush()
