"""Geometry shared by PopEval and the cascade."""

from __future__ import annotations

from collections.abc import Sequence

import shapely

from aiforge.evaluate.ocr.formats import Box, polygons


def outside_dont_care(dont: Sequence[Box], pred: Sequence[Box]) -> list[Box]:
    """The predictions that do not lie more than half (of their own area) inside any don't-care box.

    A zero-area prediction is never more than half inside, so it is kept (as in the reference).
    """
    if not dont or not pred:
        return list(pred)
    pgeo, dgeo = polygons(pred), polygons(dont)
    di, pj = shapely.STRtree(pgeo).query(dgeo, predicate="intersects")
    inside = shapely.area(shapely.intersection(dgeo[di], pgeo[pj])) > shapely.area(pgeo[pj]) / 2
    drop = set(pj[inside].tolist())
    return [p for j, p in enumerate(pred) if j not in drop]
