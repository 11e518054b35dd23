from __future__ import annotations

import pytest

from aiforge import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidInput, ValueError),
        (errors.UnknownSource, ValueError),
        (errors.NotFound, LookupError),
        (errors.SnapshotNotFound, LookupError),
        (errors.ColumnNotFound, LookupError),
        (errors.SourceError, OSError),
        (errors.QueryError, OSError),
        (errors.EmptyResult, OSError),
        (errors.ServiceError, OSError),
        (errors.Overloaded, OSError),
        (errors.WorkspaceError, OSError),
        (errors.NotFittedError, AttributeError),
    ],
)
def test_every_error_is_an_aiforge_error_and_its_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, errors.AiforgeError)
    assert issubclass(cls, builtin)


def test_the_tree_in_the_docstring_names_every_public_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} is missing from the tree drawn in aiforge/errors.py"


def test_not_found_message_is_not_quoted_like_a_key_error() -> None:
    assert str(errors.SnapshotNotFound("snapshot 'x' not found")) == "snapshot 'x' not found"


def test_query_error_keeps_the_database_message_and_the_query() -> None:
    exc = errors.QueryError('relation "nope" does not exist', "SELECT * FROM nope")
    assert exc.message == 'relation "nope" does not exist'
    assert exc.query == "SELECT * FROM nope"
    assert str(exc) == 'relation "nope" does not exist\n  query: SELECT * FROM nope'


def test_conflict_is_public_and_only_an_aiforge_error() -> None:
    import aiforge

    assert aiforge.Conflict is errors.Conflict
    assert errors.Conflict.__mro__[1:] == (errors.AiforgeError, Exception, BaseException, object)


@pytest.mark.parametrize(
    ("exc", "http", "code"),
    [
        (errors.InvalidInput("bad"), 400, "INVALID_ARGUMENT"),
        (errors.UnknownSource("bad source"), 400, "INVALID_ARGUMENT"),
        (errors.NotFound("gone"), 404, "NOT_FOUND"),
        (errors.ModelNotFound("no model"), 404, "NOT_FOUND"),
        (errors.SnapshotNotFound("no snapshot"), 404, "NOT_FOUND"),
        (errors.Conflict("taken"), 409, "ABORTED"),
        (errors.ServiceError("down"), 503, "UNAVAILABLE"),
        (errors.Overloaded("full", 2.0), 503, "UNAVAILABLE"),
        (errors.QueryError("syntax", "SELECT"), 500, "INTERNAL"),
        (errors.WorkspaceError("disk full"), 500, "INTERNAL"),
        (errors.NotFittedError("fit first"), 500, "INTERNAL"),
        (errors.AiforgeError("plain"), 500, "INTERNAL"),
        (ValueError("a bug, not an aiforge error"), 500, "INTERNAL"),
        (KeyError("k"), 500, "INTERNAL"),
    ],
)
def test_one_table_gives_http_and_grpc_status(exc: BaseException, http: int, code: str) -> None:
    assert errors.http_status(exc) == http
    assert errors.grpc_code(exc) == code


def test_the_most_specific_class_wins() -> None:
    class Special(errors.ModelNotFound, errors.Conflict):  # NotFound's row comes first in the MRO
        pass

    assert errors.http_status(Special("x")) == 404
    assert errors.STATUS[errors.Overloaded] == errors.STATUS[errors.ServiceError] == (503, "UNAVAILABLE")


def test_every_public_error_has_a_row() -> None:
    import grpc

    for name in errors.__all__:
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, errors.AiforgeError):
            assert kind.__mro__[0] in errors.STATUS or any(k in errors.STATUS for k in kind.__mro__[1:])
    for _, code in errors.STATUS.values():
        assert hasattr(grpc.StatusCode, code), code


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.InvalidInput), ("INVALID_ARGUMENT", errors.InvalidInput),
        (404, errors.NotFound), ("NOT_FOUND", errors.NotFound),
        (409, errors.Conflict), ("ABORTED", errors.Conflict),
        (503, errors.ServiceError), ("UNAVAILABLE", errors.ServiceError),
        (429, errors.Overloaded), ("RESOURCE_EXHAUSTED", errors.Overloaded),
        (500, errors.ServiceError), ("INTERNAL", errors.ServiceError),
        (401, errors.ServiceError), ("UNAUTHENTICATED", errors.ServiceError),
        (502, errors.ServiceError), ("DEADLINE_EXCEEDED", errors.ServiceError),
    ],
)
def test_error_for_status_reads_the_table_backwards(status: int | str, kind: type) -> None:
    error = errors.error_for_status(status, "the server's message")
    assert type(error) is kind
    assert str(error) == "the server's message"


def test_the_inverse_round_trips_every_client_facing_row() -> None:
    for kind, (http, code) in errors.STATUS.items():
        if http == 500:
            continue
        for status in (http, code):
            error = errors.error_for_status(status, "m", retry_after=3.0 if kind is errors.Overloaded else None)
            assert type(error) is kind
            assert (errors.http_status(error), errors.grpc_code(error)) == (http, code)


def test_error_for_status_with_retry_after_and_preferred_classes() -> None:
    overloaded = errors.error_for_status(503, "queue full", retry_after=2.5)
    assert type(overloaded) is errors.Overloaded and overloaded.retry_after_s == 2.5
    assert errors.error_for_status(429, "slow down").retry_after_s == 1.0  # type: ignore[attr-defined]
    assert type(errors.error_for_status(400, "bad", retry_after=2.0)) is errors.InvalidInput
    preferred = errors.error_for_status("NOT_FOUND", "no model 'x'", prefer=(errors.ModelNotFound,))
    assert type(preferred) is errors.ModelNotFound and str(preferred) == "no model 'x'"
    assert type(errors.error_for_status(400, "bad", prefer=(errors.ModelNotFound,))) is errors.InvalidInput
