"""What every local source shares: the stream handed to the writer, and how driver errors become aiforge's."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from aiforge.engines.columns import ColumnPlan
from aiforge.engines.sources import Source
from aiforge.errors import QueryError, SourceError

__all__ = ["CONNECT_TIMEOUT_S", "BatchStream", "database_errors", "is_panic", "message", "stream", "unreachable"]

CONNECT_TIMEOUT_S = 5.0
# how drivers word a connection that died while the result was streaming (as opposed to an error in the query)
LOST_CONNECTION = re.compile(
    r"terminating connection|server closed the connection|connection (?:to (?:the )?server )?(?:was )?lost"
    r"|no connection to the server|could not (?:receive|send) data|broken pipe|connection reset|reset by peer"
    r"|Lost connection to (?:MySQL )?server|server has gone away",
    re.I,
)


@dataclass
class BatchStream:
    """The result of a query: its Arrow schema, an iterator over its record batches (consumed once), and a note
    per column whose storage the manifest should explain (see :class:`~aiforge.engines.columns.Noted`)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    notes: dict[str, str] = field(default_factory=dict)


def is_panic(exc: BaseException) -> bool:
    """A Rust driver's panic (ConnectorX's) reaches Python as ``pyo3_runtime.PanicException``, a BaseException."""
    return type(exc).__name__ == "PanicException"


def database_errors(source: Source, query: str) -> Callable[[BaseException], Exception]:
    """How a database driver's error mid-stream maps to ours: a lost connection, or the query's own error."""

    def classify(exc: BaseException) -> Exception:
        text = message(source, exc)
        if LOST_CONNECTION.search(text):
            return SourceError(f"lost the connection to {source.redacted} while reading: {text}")
        return QueryError(text, query)

    return classify


def stream(
    reader: pa.RecordBatchReader,
    classify: Callable[[BaseException], Exception],
    plan: ColumnPlan,
    finish: Callable[[], None] | None = None,
) -> BatchStream:
    """Wrap ``reader`` for the writer: each batch converted by ``plan``, driver errors raised mid-stream turned
    into aiforge errors by ``classify`` (a Rust driver's panic too), and ``finish`` called after the last batch."""

    def batches() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except BaseException as exc:
                if not isinstance(exc, Exception) and not is_panic(exc):
                    raise  # KeyboardInterrupt, SystemExit
                raise classify(exc) from exc
            yield plan.apply(batch)
        if finish is not None:
            finish()

    return BatchStream(plan.schema, batches(), plan.notes)


def message(source: Source, exc: BaseException) -> str:
    """The driver's message on one line, without the password, the echoed query or a caret diagram."""
    text = source.scrub(str(exc)).strip()
    text = re.split(r"\n\s*(?:Query was:|query:)", text, maxsplit=1)[0]  # we print the query ourselves
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not re.match(r"^(LINE \d+:|\^+$)", line)]
    return " ".join(lines) or type(exc).__name__


def unreachable(source: Source, exc: BaseException | str) -> SourceError:
    detail = exc if isinstance(exc, str) else message(source, exc)
    return SourceError(
        f"cannot connect to {source.redacted}: {detail}; check that the server runs and that the host, port, "
        "database, user and password are right"
    )
