"""What a dump reads from: parse SOURCE into a :class:`Source`, with its credentials kept out of sight.

SOURCE is one of::

    postgresql://user:pw@host:5432/db   (also postgres://)
    mysql://user:pw@host:3306/db
    sqlite:///relative/file.db   sqlite:////absolute/file.db   (SQLAlchemy's convention)
    duckdb:///relative/file.duckdb   duckdb:////absolute/file.duckdb
    data/*.parquet   data/part.csv   data/folder/   (Parquet or CSV files: a path, a folder or a glob)
    spark   (the Spark/Hive catalog; only with the spark engine)

The password (and any query parameter that looks like a secret) is removed from :attr:`Source.redacted`, the
only form of the source that may reach a manifest, a log line or an error message.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from aiforge.errors import InvalidInput, UnknownSource

__all__ = ["SCHEMES", "Source", "expand_user", "parse_files", "parse_source", "redact"]

SourceKind = Literal["postgresql", "mysql", "sqlite", "duckdb", "files", "spark"]

#: URL schemes that SOURCE may use, and the kind each one maps to.
SCHEMES: dict[str, SourceKind] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
}
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key", re.I)
_PARQUET = (".parquet", ".pq", ".parq")
_CSV = (".csv", ".csv.gz", ".tsv", ".txt")


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE.

    Attributes
    ----------
    kind : {'postgresql', 'mysql', 'sqlite', 'duckdb', 'files', 'spark'}
    url : str
        The URL as given, credentials included (never printed: it is left out of ``repr``).
    redacted : str
        The source with its password removed; safe to log and to store in manifests.
    paths : tuple of str
        The files of a ``files`` source (sorted), or the database file of a ``sqlite``/``duckdb`` source.
    format : {'parquet', 'csv'} or None
        The file format of a ``files`` source.
    """

    kind: SourceKind
    url: str = field(repr=False)
    redacted: str
    paths: tuple[str, ...] = ()
    format: Literal["parquet", "csv"] | None = None

    @property
    def is_database(self) -> bool:
        """True for a database URL (a query is required), False for files and the Spark catalog."""
        return self.kind in ("postgresql", "mysql", "sqlite", "duckdb")

    def scrub(self, text: str) -> str:
        """Remove this source's password from ``text`` (a driver's error message, for instance)."""
        parts = urlsplit(self.url) if self.is_database else None
        if parts is None or not parts.password:
            return text
        for secret in {parts.password, unquote(parts.password), quote(unquote(parts.password), safe="")}:
            text = text.replace(secret, "***")
        return text


def redact(url: str) -> str:
    """Return ``url`` without its password and without query parameters that look like secrets.

    Examples
    --------
    >>> redact("postgresql://ana:s3cret@db:5432/shop?sslmode=require&password=x")
    'postgresql://ana@db:5432/shop?sslmode=require'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed '[': nothing in it can be shown safely but its scheme
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://(unreadable URL)" if sep else "(unreadable URL)"
    if not parts.scheme or ("@" not in parts.netloc and not parts.query):
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username
    netloc = f"{quote(unquote(user), safe='')}@{host}" if user else host
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_PARAM.search(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_source(source: str | os.PathLike[str]) -> Source:
    """Parse SOURCE: a database URL, a Parquet/CSV path, folder or glob, or ``"spark"``.

    Parameters
    ----------
    source : str or path
        See the module docstring for the accepted forms.

    Returns
    -------
    Source

    Raises
    ------
    UnknownSource
        An unsupported URL scheme, or a path or glob that matches no Parquet/CSV file.
    InvalidInput
        A URL without the parts its kind needs, or a glob that mixes Parquet and CSV files.

    Examples
    --------
    >>> parse_source("postgresql://ana:s3cret@db/shop").redacted
    'postgresql://ana@db/shop'
    >>> parse_source("spark").kind
    'spark'
    """
    text = os.fspath(source).strip() if isinstance(source, str | os.PathLike) else None
    if not text:
        raise InvalidInput(f"SOURCE must be a database URL or a file path; got {source!r}")
    if text == "spark":
        return Source("spark", "spark", "spark")
    match = _SCHEME.match(text)
    if match is None:
        urls = ", ".join(s + "://" for s in SCHEMES)
        return parse_files(text, hint=f"; or give a database URL ({urls})")
    scheme = match["scheme"].lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        supported = ", ".join(f"{s}://" for s in SCHEMES)
        raise UnknownSource(
            f"unsupported source scheme {scheme + '://'!r} in {redact(text)!r}; supported: {supported}, "
            "a Parquet/CSV path or glob, or 'spark' (with --engine spark)"
        )
    if kind in ("sqlite", "duckdb"):
        path = text[match.end() :]
        # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute.db
        if not path.startswith("/") or len(path) < 2:
            raise InvalidInput(
                f"expected {scheme}:///relative/path or {scheme}:////absolute/path for SOURCE; got {text!r}"
            )
        return Source(kind, text, text, paths=(path[1:],))
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidInput(f"SOURCE {redact(text)!r} is not a readable URL: {exc}") from None
    if not parts.hostname or not parts.path.strip("/"):
        raise InvalidInput(
            f"expected {scheme}://USER[:PASSWORD]@HOST[:PORT]/DATABASE for SOURCE; got {redact(text)!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"invalid port in SOURCE {redact(text)!r}: {exc}") from None
    return Source(kind, text, redact(text))


def expand_user(text: str) -> Path:
    """``Path(text).expanduser()``, or the path as written when ``~user`` names nobody (instead of RuntimeError)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def parse_files(text: str, *, hint: str = "") -> Source:
    """Resolve a Parquet/CSV path, folder or glob into a ``files`` :class:`Source` (sorted, absolute paths).

    Raises
    ------
    UnknownSource
        Nothing matches, or a matched file is neither Parquet nor CSV. ``hint`` is appended to the message.
    InvalidInput
        The files mix Parquet and CSV.

    Examples
    --------
    >>> parse_files("/no/such/*.parquet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiforge.errors.UnknownSource: no Parquet/CSV file matches '/no/such/*.parquet'; give an existing file, ...
    """
    path = expand_user(text)
    if path.is_dir():
        found = [str(p) for p in sorted(path.rglob("*")) if p.is_file() and _format_of(p.name)]
    elif glob.has_magic(text):
        found = [p for p in sorted(glob.glob(str(path), recursive=True)) if os.path.isfile(p)]
    else:
        found = [str(path)] if path.is_file() else []
    if not found:
        where = f"the folder {text!r} has no Parquet/CSV files" if path.is_dir() else (
            f"no Parquet/CSV file matches {text!r}"
        )
        raise UnknownSource(f"{where}; give an existing file, folder or glob{hint}")
    formats = {_format_of(p) for p in found}
    if None in formats:
        bad = next(p for p in found if _format_of(p) is None)
        raise UnknownSource(
            f"cannot tell the format of {bad!r}: expected a Parquet ({', '.join(_PARQUET)}) "
            f"or CSV ({', '.join(_CSV)}) file"
        )
    if len(formats) > 1:
        raise InvalidInput(f"SOURCE {text!r} mixes Parquet and CSV files; dump each format separately")
    fmt = formats.pop()
    return Source("files", text, text, paths=tuple(os.path.abspath(p) for p in found), format=fmt)


def _format_of(name: str) -> Literal["parquet", "csv"] | None:
    lower = name.lower()
    if lower.endswith(_PARQUET):
        return "parquet"
    if lower.endswith(_CSV):
        return "csv"
    return None
