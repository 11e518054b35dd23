"""A few seconds' look at a MySQL/MariaDB server before ConnectorX reads from it: log in, describe the query.

ConnectorX opens connections through a pool that retries a refused login for 30 seconds, and it cannot tell
which column of a result it failed to convert. This module speaks just enough of the MySQL client/server
protocol to do the two things it cannot, with a short timeout:

* log in (``mysql_native_password``, or ``caching_sha2_password``'s fast path), so that a wrong password, an
  unknown database or a host the server refuses is a clear error at once;
* prepare the query without running it (``COM_STMT_PREPARE``), which gives each result column's name, type,
  length and decimals: what a snapshot needs to refuse a column before reading it.

It never decides that a dump cannot go ahead unless the server said so: any case it does not handle (TLS asked
for in the URL, another authentication plugin, an unexpected packet) returns None, and ConnectorX goes on as
before. The password is only ever hashed into the scramble the server asks for.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["DEFINITE", "Column", "ServerError", "describe"]

#: server error codes that retrying cannot change: bad password, no such database, host not allowed
DEFINITE = {1044, 1045, 1049, 1129, 1130, 1698}

_LONG_PASSWORD, _CONNECT_WITH_DB, _PROTOCOL_41 = 0x1, 0x8, 0x200
_TRANSACTIONS, _SECURE_CONNECTION, _PLUGIN_AUTH = 0x2000, 0x8000, 0x80000
_UTF8MB4 = 45
_TYPES = {
    0: "DECIMAL", 1: "TINYINT", 2: "SMALLINT", 3: "INT", 4: "FLOAT", 5: "DOUBLE", 6: "NULL", 7: "TIMESTAMP",
    8: "BIGINT", 9: "MEDIUMINT", 10: "DATE", 11: "TIME", 12: "DATETIME", 13: "YEAR", 14: "DATE", 15: "VARCHAR",
    16: "BIT", 17: "TIMESTAMP", 18: "DATETIME", 19: "TIME", 245: "JSON", 246: "DECIMAL", 247: "ENUM", 248: "SET",
    249: "TINYBLOB", 250: "MEDIUMBLOB", 251: "LONGBLOB", 252: "BLOB", 253: "VARCHAR", 254: "CHAR",
    255: "GEOMETRY",
}  # fmt: skip
_UNSIGNED = 0x20


class ServerError(Exception):
    """The server answered with an error packet: its code and text (``Access denied for user ...``)."""

    def __init__(self, code: int, text: str, *, login: bool) -> None:
        super().__init__(f"ERROR {code}: {text}")
        self.code, self.text, self.login = code, text, login


@dataclass(frozen=True)
class Column:
    """One column of a prepared query's result, as the server describes it."""

    name: str
    type_code: int
    length: int
    decimals: int
    flags: int

    @property
    def type_name(self) -> str:
        """``DECIMAL(10,2)``, ``TIME``, ``GEOMETRY``...: the type as a user would write it."""
        name = _TYPES.get(self.type_code, f"type {self.type_code}")
        if name == "DECIMAL":
            return f"DECIMAL({self.precision},{self.decimals})"
        return name

    @property
    def precision(self) -> int:
        """Digits of a DECIMAL (the server sends its display length: digits, sign and point)."""
        return self.length - (1 if self.decimals else 0) - (0 if self.flags & _UNSIGNED else 1)


def describe(url: str, query: str, timeout: float) -> list[Column] | None:
    """Log in to the server of ``url`` and describe ``query``'s result columns without running it.

    Returns None when this cannot tell (see the module docstring). Raises :class:`OSError` when nothing
    answers at the host and port, and :class:`ServerError` when the server refuses the login or the query.
    """
    parts = urlsplit(url)
    options = {k.lower() for k, _ in parse_qsl(parts.query)}
    if any(word in key for key in options for word in ("ssl", "tls", "socket")) or not parts.username:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 3306), timeout=timeout):
            return None
    user, password = unquote(parts.username), unquote(parts.password or "")
    database = unquote(parts.path.lstrip("/"))
    with socket.create_connection((parts.hostname or "localhost", parts.port or 3306), timeout=timeout) as sock:
        link = _Link(sock)
        if not _login(link, user, password, database):
            return None
        with contextlib.suppress(OSError):
            return _prepare(link, query)
    return None


class _Link:
    """Packets over a socket: 3-byte length, 1-byte sequence number, payload."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.seq = sock, 0

    def read(self) -> bytes:
        header = self._exactly(4)
        self.seq = (header[3] + 1) % 256
        return self._exactly(int.from_bytes(header[:3], "little"))

    def write(self, payload: bytes, *, new_command: bool = False) -> None:
        if new_command:
            self.seq = 0
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) % 256

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data


def _error(packet: bytes, *, login: bool) -> ServerError:
    code, text = int.from_bytes(packet[1:3], "little"), packet[3:]
    if text[:1] == b"#":  # then a five-character SQLSTATE
        text = text[6:]
    return ServerError(code, text.decode(errors="replace"), login=login)


def _scramble(plugin: str, password: str, nonce: bytes) -> bytes | None:
    if not password:
        return b""
    secret = password.encode()
    if plugin == "mysql_native_password":
        stage1 = hashlib.sha1(secret).digest()
        mask = hashlib.sha1(nonce[:20] + hashlib.sha1(stage1).digest()).digest()
        return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    if plugin == "caching_sha2_password":
        stage1 = hashlib.sha256(secret).digest()
        mask = hashlib.sha256(hashlib.sha256(stage1).digest() + nonce[:20]).digest()
        return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    return None


def _login(link: _Link, user: str, password: str, database: str) -> bool:
    hello = link.read()
    if hello[:1] == b"\xff":
        raise _error(hello, login=True)
    if hello[0] != 10:
        return False
    end = hello.index(b"\0", 1)
    pos = end + 1 + 4
    nonce = hello[pos : pos + 8]
    pos += 9
    capabilities = int.from_bytes(hello[pos : pos + 2], "little")
    pos += 2
    plugin = "mysql_native_password"
    if len(hello) > pos:
        capabilities |= int.from_bytes(hello[pos + 3 : pos + 5], "little") << 16
        nonce_length = hello[pos + 5]
        pos += 16
        if capabilities & _SECURE_CONNECTION:
            size = max(13, nonce_length - 8)  # the second part of the nonce, then a NUL
            nonce += hello[pos : pos + size - 1]
            pos += size
        if capabilities & _PLUGIN_AUTH:
            plugin = hello[pos:].split(b"\0", 1)[0].decode(errors="replace") or plugin
    if not capabilities & _PROTOCOL_41 or not capabilities & _SECURE_CONNECTION:
        return False
    answer = _scramble(plugin, password, nonce)
    if answer is None:
        return False
    flags = _LONG_PASSWORD | _PROTOCOL_41 | _TRANSACTIONS | _SECURE_CONNECTION | _PLUGIN_AUTH
    if database:
        flags |= _CONNECT_WITH_DB
    payload = struct.pack("<IIB23x", flags, 1 << 24, _UTF8MB4) + user.encode() + b"\0"
    payload += bytes([len(answer)]) + answer
    if database:
        payload += database.encode() + b"\0"
    link.write(payload + plugin.encode() + b"\0")
    while True:
        reply = link.read()
        kind = reply[:1]
        if kind == b"\x00":
            return True
        if kind == b"\xff":
            raise _error(reply, login=True)
        if kind == b"\xfe" and len(reply) > 1:  # the server asks for another plugin, with a new nonce
            name, _, nonce = reply[1:].partition(b"\0")
            answer = _scramble(name.decode(errors="replace"), password, nonce.rstrip(b"\0"))
            if answer is None:
                return False
            link.write(answer)
            continue
        if kind == b"\x01" and reply[1:2] == b"\x03":  # caching_sha2_password: the fast path worked
            continue
        return False  # caching_sha2_password's full login needs TLS or an RSA key; leave it to the driver


def _lenenc(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _column(packet: bytes) -> Column:
    pos, texts = 0, []
    for _ in range(6):  # catalog, schema, table, org_table, name, org_name
        size, pos = _lenenc(packet, pos)
        texts.append(packet[pos : pos + size])
        pos += size
    _, pos = _lenenc(packet, pos)
    _charset, length, type_code, flags, decimals = struct.unpack_from("<HIBHB", packet, pos)
    return Column(texts[4].decode(errors="replace"), type_code, length, decimals, flags)


def _prepare(link: _Link, query: str) -> list[Column] | None:
    link.write(b"\x16" + query.encode(), new_command=True)
    reply = link.read()
    if reply[:1] == b"\xff":
        raise _error(reply, login=False)
    if reply[:1] != b"\x00":
        return None
    statement, n_columns, n_params = struct.unpack_from("<IHH", reply, 1)
    if n_params:
        for _ in range(n_params):
            link.read()
        link.read()  # EOF
    columns = [_column(link.read()) for _ in range(n_columns)]
    if n_columns:
        link.read()  # EOF
    link.write(b"\x19" + statement.to_bytes(4, "little"), new_command=True)  # COM_STMT_CLOSE: no answer
    link.write(b"\x01", new_command=True)  # COM_QUIT
    return columns
