"""BATCH: a YAML feature spec turns a snapshot into feature vectors, on the local engine or on Spark, and saves the
fitted :class:`Transform` (``transform.json``) that serving reuses.

``aiforge.batch("features.yaml")`` calls :func:`batch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.batch._batch import FeatureSnapshot, batch
    from aiforge.batch._feature_ops import expand_columns
    from aiforge.batch.spec import BatchSpec, load_spec
    from aiforge.batch.transform import Transform

__all__ = ["BatchSpec", "FeatureSnapshot", "Transform", "batch", "expand_columns", "load_spec"]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BatchSpec": "aiforge.batch.spec",
        "FeatureSnapshot": "aiforge.batch._batch",
        "Transform": "aiforge.batch.transform",
        "batch": "aiforge.batch._batch",
        "expand_columns": "aiforge.batch._feature_ops",
        "load_spec": "aiforge.batch.spec",
    },
    call="batch",
)
