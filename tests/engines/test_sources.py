"""Parsing SOURCE: kinds, paths, globs, and credentials that never leak."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiforge.engines.sources import SCHEMES, Source, parse_source, redact
from aiforge.errors import InvalidInput, UnknownSource


@pytest.mark.parametrize(
    ("url", "kind", "redacted"),
    [
        ("postgresql://ana:pw@db:5432/shop", "postgresql", "postgresql://ana@db:5432/shop"),
        ("postgres://ana@db/shop", "postgresql", "postgres://ana@db/shop"),
        ("mysql://root:pw@127.0.0.1:3306/test", "mysql", "mysql://root@127.0.0.1:3306/test"),
        (
            "postgresql://db/shop?sslmode=require&password=pw",
            "postgresql",
            "postgresql://db/shop?sslmode=require",
        ),
    ],
)
def test_database_urls(url: str, kind: str, redacted: str) -> None:
    source = parse_source(url)
    assert (source.kind, source.url, source.redacted, source.is_database) == (kind, url, redacted, True)
    assert "pw" not in repr(source)


def test_file_databases_follow_sqlalchemy_paths() -> None:
    assert parse_source("sqlite:///rel/w.db").paths == ("rel/w.db",)
    assert parse_source("sqlite:////abs/w.db").paths == ("/abs/w.db",)
    assert parse_source("duckdb:////abs/w.duckdb").kind == "duckdb"
    with pytest.raises(InvalidInput, match=r"^expected sqlite:///relative/path or sqlite:////absolute/path"):
        parse_source("sqlite://w.db")


def test_spark_catalog() -> None:
    assert parse_source("spark") == Source("spark", "spark", "spark")
    assert parse_source("spark").is_database is False


def test_files_path_glob_and_folder(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.parquet", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    expected = (str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))
    assert parse_source(str(tmp_path / "*.parquet")).paths == expected
    assert parse_source(tmp_path).paths == expected
    single = parse_source(tmp_path / "b.parquet")
    assert (single.kind, single.format, single.paths) == ("files", "parquet", expected[1:])
    (tmp_path / "c.csv").write_text("a\n1\n")
    assert parse_source(tmp_path / "c.csv").format == "csv"


def test_mixed_formats_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_bytes(b"x")
    (tmp_path / "b.csv").write_text("a\n")
    with pytest.raises(InvalidInput, match=r"mixes Parquet and CSV files; dump each format separately"):
        parse_source(str(tmp_path / "*"))


def test_unknown_file_format(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(UnknownSource, match=r"^cannot tell the format of .*a\.json.: expected a Parquet"):
        parse_source(tmp_path / "a.json")


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(UnknownSource) as info:
        parse_source("mssql://sa:secret@db/x")
    message = str(info.value)
    assert message.startswith("unsupported source scheme 'mssql://' in 'mssql://sa@db/x'; supported: ")
    assert all(f"{scheme}://" in message for scheme in SCHEMES)
    assert "secret" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db", r"^expected postgresql://USER\[:PASSWORD\]@HOST\[:PORT\]/DATABASE for SOURCE"),
        ("mysql://u:pw@db:99999/x", r"^invalid port in SOURCE 'mysql://u@db:99999/x'"),
        ("", r"^SOURCE must be a database URL or a file path"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_source(url)
    assert "pw" not in str(info.value)


def test_missing_path() -> None:
    with pytest.raises(
        UnknownSource,
        match=r"^no Parquet/CSV file matches 'nope/\*\.parquet'; give an existing file, folder or glob; "
        r"or give a database URL \(postgresql://, postgres://, mysql://, sqlite://, duckdb://\)$",
    ):
        parse_source("nope/*.parquet")


_secret = st.text(
    alphabet=string.ascii_letters + string.digits + "!$%&()*+,;=:@/?#[] ", min_size=4, max_size=24
)


@given(password=_secret, user=st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8))
def test_redacted_never_contains_the_password(password: str, user: str) -> None:
    encoded = quote(password, safe="")
    url = f"postgresql://{user}:{encoded}@db.example:5432/shop"
    source = parse_source(url)
    assert source.redacted == f"postgresql://{user}@db.example:5432/shop"
    assert "***" in source.scrub(f"FATAL: password {password} rejected ({encoded})")
    assert password not in source.scrub(f"FATAL: password {password} rejected")


def test_redact_leaves_urls_without_secrets_alone() -> None:
    assert redact("postgresql://db/shop") == "postgresql://db/shop"
    assert redact("data/*.parquet") == "data/*.parquet"


@pytest.mark.parametrize("source", ["A://[", "mysql://root:s3cret@[x/db", "postgresql://u:s3cret@[::1/db"])
def test_an_unreadable_url_is_an_error_that_shows_no_password(source: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_source(source)
    assert "s3cret" not in str(info.value) and "(unreadable URL)" in str(info.value)


def test_a_tilde_naming_no_user_is_an_unknown_source_not_a_runtime_error() -> None:
    with pytest.raises(UnknownSource, match=r"^no Parquet/CSV file matches '~aiforge-no-such-user/x\.parquet'"):
        parse_source("~aiforge-no-such-user/x.parquet")
