"""write_output: a path the user names is written to, not replaced (symlinks, FIFOs, devices, '-' for stdout)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aiforge.workspace import write_output


def test_a_new_file_is_created_with_its_folders_and_the_usual_permissions(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.json"
    assert write_output(path, "{}") == path
    assert path.read_text() == "{}"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]  # no temporary file left


def test_a_regular_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "out.html"
    path.write_text("old")
    with path.open() as reader:  # a reader of the old file keeps seeing all of it
        write_output(path, b"new")
        assert reader.read() == "old"
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real" / "report.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    assert write_output(link, "new") == link
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "created.json")
    write_output(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.json").read_text() == "made"


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there, so opening to write does not block
    try:
        write_output(fifo, "through the pipe")
        try:
            received = os.read(reader, 1 << 16)
        except BlockingIOError:
            received = b""
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received == b"through the pipe"


def test_a_character_device_is_written_to_not_replaced(tmp_path: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    write_output(device, "discarded")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_a_link_to_the_process_stdout_writes_to_stdout(tmp_path: Path) -> None:
    # /dev/stdout is a symlink to /proc/self/fd/1; a link of our own tests the same thing without touching /dev
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    code = "import sys; from aiforge.workspace import write_output; write_output(sys.argv[1], 'hello')"
    out = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True, text=True, check=True)
    assert out.stdout == "hello"
    assert link.is_symlink()


def test_dash_means_stdout(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert write_output("-", "text\n") == Path("-")
    assert write_output(Path("-"), b"bytes\n") == Path("-")
    assert capsysbinary.readouterr().out == b"text\nbytes\n"
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_output(tmp_path, "x")
    link = tmp_path / "to-folder"
    link.symlink_to(tmp_path)
    with pytest.raises(IsADirectoryError):
        write_output(link, "x")
    assert link.is_symlink()
