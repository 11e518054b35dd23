"""Writing and describing the Parquet part files of a snapshot (``data/part-00000.parquet``, ...)."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

__all__ = [
    "PartWriter",
    "bernoulli_sample",
    "content_hash",
    "data_manifest",
    "describe_parts",
    "dictionary_columns",
    "part_name",
    "prefetch",
]

ROWS_PER_FILE = 1_000_000
ROW_GROUP_ROWS = 131_072
MAX_FILE_BYTES = 512 * 1024**2
MAX_BUFFER_BYTES = 64 * 1024**2
COMPRESSION = "zstd"


def part_name(index: int) -> str:
    """``data/part-00003.parquet`` for ``index=3``: the path of a part relative to the snapshot folder."""
    return f"data/part-{index:05d}.parquet"


class PartWriter:
    """Write record batches into rolling Parquet files with fixed-size row groups.

    Row groups hold exactly ``row_group_rows`` rows (except the last one of a file) whatever batch sizes the
    driver produced, so the same rows always give the same bytes, hence the same content hash. A file is
    rolled after ``rows_per_file`` rows or ``max_file_bytes`` bytes. Nothing is created until the first row
    arrives.

    Parameters
    ----------
    folder : Path
        The snapshot's staging folder; files go to ``folder / part_name(i)``.
    schema : pyarrow.Schema
    rows_per_file, row_group_rows, max_file_bytes : int
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        *,
        rows_per_file: int = ROWS_PER_FILE,
        row_group_rows: int = ROW_GROUP_ROWS,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.folder, self.schema = folder, schema
        self.rows_per_file, self.row_group_rows, self.max_file_bytes = (
            rows_per_file,
            row_group_rows,
            max_file_bytes,
        )
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._index = -1
        self._sink: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._dictionary: list[str] | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer ``batch``; write out full row groups."""
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        while self._pending_rows >= self._group_size() or self._pending_bytes >= MAX_BUFFER_BYTES:
            self._flush(self._group_size())

    def close(self) -> None:
        """Write what is buffered and close the current file."""
        while self._pending_rows:
            self._flush(self._group_size())
        self._close_file()

    def abort(self) -> None:
        """Close without flushing (after an error); the caller removes the folder."""
        self._pending = []
        self._close_file()

    def _group_size(self) -> int:
        room = self.rows_per_file - self._file_rows if self._writer is not None else self.rows_per_file
        return max(1, min(self.row_group_rows, room))

    def _flush(self, size: int) -> None:
        table = pa.Table.from_batches(self._pending, self.schema)
        group, rest = table.slice(0, size), table.slice(size)
        if self._dictionary is None:  # decided once, from the first row group, for every file of the dump
            self._dictionary = dictionary_columns(group)
        writer = self._writer if self._writer is not None else self._open_file()
        writer.write_table(group, row_group_size=max(1, group.num_rows))
        self._file_rows += group.num_rows
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._pending_bytes = rest.nbytes if rest.num_rows else 0
        if self._file_rows >= self.rows_per_file or self._sink.tell() >= self.max_file_bytes:
            self._close_file()

    def _open_file(self) -> pq.ParquetWriter:
        self._index += 1
        path = self.folder / part_name(self._index)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(
            self._sink, self.schema, compression=COMPRESSION, use_dictionary=self._dictionary or False
        )
        self._file_rows = 0
        return self._writer

    def _close_file(self) -> None:
        writer, sink = self._writer, self._sink
        self._writer = self._sink = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if sink is not None:
                sink.close()


_NOT_WORTH_A_DICTIONARY = (pa.types.is_nested, pa.types.is_boolean, pa.types.is_floating, pa.types.is_null)


def dictionary_columns(table: pa.Table, max_ratio: float = 0.3) -> list[str]:
    """The columns worth dictionary-encoding: few distinct values in ``table`` (a sample of the data).

    Parquet writers try a dictionary for every column and fall back when it grows too large; on unique columns
    (ids, hashes, free text) that attempt costs about half the write time for nothing.

    Examples
    --------
    >>> dictionary_columns(pa.table({"id": [1, 2, 3, 4], "colour": ["red", "red", "red", "blue"]}), 0.6)
    ['colour']
    """
    chosen = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if any(check(kind) for check in _NOT_WORTH_A_DICTIONARY):
            continue
        if pa.compute.count_distinct(column).as_py() <= max_ratio * max(1, len(column)):
            chosen.append(name)
    return chosen


def bernoulli_sample(
    batches: Iterable[pa.RecordBatch], fraction: float, seed: int
) -> Iterator[pa.RecordBatch]:
    """Keep each row with probability ``fraction``, reproducibly.

    One uniform draw per row from ``numpy.random.Generator(PCG64(seed))``, in row order, so the rows kept
    depend only on the seed and the order of the rows, not on how the driver cut them into batches.

    Examples
    --------
    >>> batch = pa.record_batch({"x": list(range(10))})
    >>> [b.num_rows for b in bernoulli_sample([batch], 0.5, seed=0)]
    [3]
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    for batch in batches:
        keep = rng.random(batch.num_rows) < fraction
        yield batch.filter(pa.array(keep))


@contextlib.contextmanager
def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[Iterator[pa.RecordBatch]]:
    """Pull ``batches`` in a background thread, at most ``depth`` ahead, while the caller writes.

    Drivers and the Parquet writer release the GIL, so fetching the next batch overlaps with compressing the
    last one. Errors from the driver are raised in the caller's thread. When the block ends (even by an
    error), the thread is stopped and joined before the caller closes the connection it reads from.

    Examples
    --------
    >>> with prefetch(iter([pa.record_batch({"x": [1]})])) as ahead:
    ...     [b.num_rows for b in ahead]
    [1]
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
        except BaseException as exc:  # handed over to the consumer, which raises it
            put(_Failure(exc))
            return
        put(done)

    def consume() -> Iterator[pa.RecordBatch]:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    thread = threading.Thread(target=produce, name="aiforge-prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def describe_parts(folder: Path) -> list[dict[str, Any]]:
    """``[{"path", "rows", "bytes"}]`` for the part files under ``folder/data``, in order."""
    parts = sorted((folder / "data").glob("part-*.parquet"))
    return [
        {"path": f"data/{p.name}", "rows": pq.ParquetFile(p).metadata.num_rows, "bytes": p.stat().st_size}
        for p in parts
    ]


def data_manifest(folder: Path, schema: pa.Schema) -> dict[str, Any]:
    """The manifest keys every snapshot has, read off the part files in ``folder/data``.

    ``schema``, ``rows``, ``bytes``, ``files``, ``content_hash``, ``created`` (ISO 8601 UTC) and ``aiforge_version``;
    each stage adds its own keys (source, query, engine, ...) before committing.
    """
    from datetime import UTC, datetime

    from aiforge.version import __version__

    files = describe_parts(folder)
    return {
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "rows": sum(item["rows"] for item in files),
        "bytes": sum(item["bytes"] for item in files),
        "files": files,
        "content_hash": content_hash(folder, files),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aiforge_version": __version__,
    }


def content_hash(folder: Path, files: list[dict[str, Any]]) -> str:
    """``sha256:<hex>`` over the bytes of the part files, in order."""
    digest = hashlib.sha256()
    for item in files:
        with open(folder / item["path"], "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
