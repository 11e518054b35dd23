"""What a reader of the docs already has before the first command: their warehouse tables and their files.

Everything else a block uses (a feature spec, a model, a handler, a payload) is made by an earlier block of the same
document, so a reader can follow the docs from the top. The data is small and made from a fixed seed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DB = "shop"  # the database the docs query, created here in PostgreSQL and MariaDB and dropped afterwards
COUNTRIES = ["KR", "US", "JP", "DE", "FR", "BR", "IN"]
DEVICES = ["ios", "android", "web"]
REVIEWS = ["fast delivery", "arrived broken", "great price", "wrong size", "would buy again", "late and damaged",
           "works as described", "not what I ordered"]


def orders_table(n: int = 400, seed: int = 0, start_id: int = 1) -> pa.Table:
    """Orders the way a shop's warehouse holds them: some amounts, ages and reviews missing, a few refunds
    (negative amounts), a label that depends on the other columns."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(4.0, 1.0, n), 2)
    amount[rng.random(n) < 0.03] *= -1
    age = rng.integers(18, 80, n)
    country = rng.choice(COUNTRIES, n, p=[0.4, 0.2, 0.15, 0.1, 0.06, 0.05, 0.04])
    device = rng.choice(DEVICES, n)
    returned = (amount > 150) | (age < 23)
    returned ^= rng.random(n) < 0.04  # labels are never all right
    bad = rng.random(n) < np.where(returned, 0.7, 0.15)
    review_i = np.where(bad, rng.choice([1, 3, 5, 7], n), rng.choice([0, 2, 4, 6], n))
    visits = rng.poisson(3, n)
    channel = rng.choice(["search", "email", "ads"], n)
    missing = {c: rng.random(n) < p for c, p in
               (("amount", 0.03), ("age", 0.05), ("visits", 0.05), ("channel", 0.05), ("review", 0.05))}
    return pa.table({
        "order_id": pa.array(np.arange(start_id, start_id + n), pa.int64()),
        "day": pa.array([dt.date(2026, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 59, n)]),
        "amount": pa.array(amount, mask=missing["amount"]),
        "age": pa.array(age, pa.int64(), mask=missing["age"]),
        "visits": pa.array(visits, pa.int64(), mask=missing["visits"]),
        "channel": pa.array(channel, mask=missing["channel"]),
        "country": pa.array(country),
        "device": pa.array(device),
        "user": pa.array([f"u{i}" for i in rng.integers(0, 60, n)]),
        "review": pa.array([REVIEWS[i] for i in review_i], mask=missing["review"]),
        "returned": pa.array(returned.astype(np.int64)),
    })


@pytest.fixture(scope="module")
def postgres_orders() -> Iterator[str]:
    """Database ``shop`` in PostgreSQL with a table ``orders`` (``amount`` NUMERIC(10,2)) and a login ``analyst``."""
    psycopg = pytest.importorskip("psycopg")
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True, connect_timeout=5)
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'analyst'").fetchone():
            admin.execute("CREATE ROLE analyst LOGIN PASSWORD 'secret'")
    table = orders_table()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB}", autocommit=True) as conn:
        conn.execute('CREATE TABLE orders (order_id bigint PRIMARY KEY, day date, amount numeric(10, 2), age int, '
                     'visits int, channel text, country text, device text, "user" text, review text, returned int)')
        with conn.cursor() as cur, cur.copy('COPY orders FROM STDIN') as copy:
            for row in table.to_pylist():
                copy.write_row(list(row.values()))
        conn.execute("GRANT SELECT ON orders TO analyst")
    yield DB
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture(scope="module")
def mysql_users() -> Iterator[str]:
    """Database ``shop`` in MariaDB with a table ``users``."""
    pymysql = pytest.importorskip("pymysql")
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(f"CREATE TABLE {DB}.users (id BIGINT PRIMARY KEY, name VARCHAR(40), country CHAR(2), "
                        "signed_up DATE, credit DECIMAL(10, 2))")
            cur.executemany(f"INSERT INTO {DB}.users VALUES (%s, %s, %s, %s, %s)",
                            [(i, f"user {i}", COUNTRIES[i % 7], dt.date(2025, 1 + i % 12, 1 + i % 28),
                              None if i % 9 == 0 else f"{i * 3.25:.2f}") for i in range(60)])
        yield DB
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()


def write_files(folder: Path) -> None:
    """The files a reader has: exported Parquet files, a SQLite and a DuckDB file, OCR results."""
    exports = folder / "exports"
    exports.mkdir()
    for month, seed in ((1, 1), (2, 2)):
        pq.write_table(orders_table(150, seed, start_id=10_000 * month), exports / f"2026-{month:02d}.parquet")
    with sqlite3.connect(folder / "shop.db") as conn:
        table = orders_table(300, 3)
        conn.execute('CREATE TABLE orders (order_id INTEGER PRIMARY KEY, day TEXT, amount REAL, age INTEGER, '
                     'visits INTEGER, channel TEXT, country TEXT, device TEXT, "user" TEXT, review TEXT, '
                     'returned INTEGER)')
        rows = [tuple(str(v) if isinstance(v, dt.date) else v for v in r.values()) for r in table.to_pylist()]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    import duckdb

    with duckdb.connect(str(folder / "warehouse.duckdb")) as conn:  # page events: what a visitor did, and how long
        conn.execute("CREATE TABLE events AS SELECT range AS id, "
                     "TIMESTAMP '2026-01-01' + INTERVAL (range) MINUTE AS at, "
                     "['view', 'click', 'buy'][range % 3 + 1] AS kind, "
                     "(range % 3) * 40.0 + (range * 7919 % 23) AS dwell_s, (range % 3) * 2 + range % 2 AS pages "
                     "FROM range(300)")
    rng = np.random.default_rng(4)
    intents = {"refund": ["I want my money back for order {}", "please refund the broken item {}"],
               "shipping": ["where is my parcel {}", "the delivery of order {} is late"],
               "account": ["I cannot log in to my account {}", "reset the password of user {}"]}
    rows = [(i, intent, rng.choice(texts).format(i)) for i in range(150)
            for intent, texts in [list(intents.items())[i % 3]]]
    rows = [(i, intent if rng.random() > 0.08 else rng.choice(list(intents)), text) for i, intent, text in rows]
    pq.write_table(pa.table({"id": [r[0] for r in rows], "intent": [str(r[1]) for r in rows],
                             "text": [str(r[2]) for r in rows]}), folder / "tickets.parquet")
    _write_ocr(folder)


def _write_ocr(folder: Path) -> None:
    """Two images of OCR ground truth and predictions in the reference format ``x1 y1 ... y4##::text``."""
    gt = {"img1": [((10, 10, 110, 40), "River"), ((120, 10, 200, 40), "side")],
          "img2": [((5, 5, 95, 30), "Hello"), ((100, 5, 180, 30), "world"), ((5, 50, 60, 80), "###")]}
    pred = {"img1": [((10, 10, 200, 40), "Riverside")],  # one box for two words: PopEval keeps the credit
            "img2": [((5, 5, 95, 30), "Hello"), ((100, 5, 180, 30), "wor1d")]}
    for name, pages in (("gt", gt), ("pred", pred)):
        (folder / name).mkdir()
        for image, boxes in pages.items():
            lines = [f"{x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2}##::{text}" for (x1, y1, x2, y2), text in boxes]
            (folder / name / f"{image}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with its own AIFORGE_HOME and ``.venv`` pointing at the project's virtualenv, so
    that ``.venv/bin/aiforge`` as the README writes it runs from there."""
    venv = Path(sys.prefix)  # the virtualenv running these tests
    (tmp_path / ".venv").symlink_to(venv)
    monkeypatch.setenv("AIFORGE_HOME", str(tmp_path / ".aiforge"))
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path)
    return tmp_path
