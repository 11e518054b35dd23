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
