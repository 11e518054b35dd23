"""Client-side batching in the APS: merged calls give each request exactly its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from aiforge.errors import InvalidInput
from aiforge.serve.aps.coalesce import CoalescingPredictor
from aiforge.serve.aps.predictor import GrpcPredictor, predictor_from_url
from aiforge.serve.protocol import InferRequest, InferResponse, Tensor
from conftest import RunningServer


class Doubler:
    """A predictor whose model doubles its input; a row holding -1 is an invalid input. It counts its calls."""

    def __init__(self, first_dim: int = -1) -> None:
        self.calls: list[int] = []
        self.first_dim = first_dim

    async def infer(self, request: InferRequest, model: str, version: str | None = None) -> InferResponse:
        x = request.inputs[0].data
        self.calls.append(x.shape[0])
        await asyncio.sleep(0)  # let other requests arrive while this call is "in flight"
        if (x == -1).any():
            raise InvalidInput("input 'x': -1 is not allowed")
        return InferResponse([Tensor("y", x * 2)], model, "1", request.id)

    async def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return {"inputs": [{"name": "x", "shape": [self.first_dim, 2]}],
                "outputs": [{"name": "y", "shape": [self.first_dim, 2]}]}

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        return True

    async def close(self) -> None:
        return None


def _request(value: float, rows: int = 1) -> InferRequest:
    return InferRequest([Tensor("x", np.full((rows, 2), value, dtype=np.float32))], id=f"r{value}")


def _gather(predictor: Any, requests: list[InferRequest]) -> list[Any]:
    async def main() -> list[Any]:
        return list(await asyncio.gather(*(predictor.infer(r, "m") for r in requests), return_exceptions=True))

    return asyncio.run(main())


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    inner = Doubler()
    requests = [_request(float(i), rows=1 + i % 3) for i in range(10)]
    answers = _gather(CoalescingPredictor(inner), requests)
    assert inner.calls == [1, 18]  # the first goes alone at once; the nine that came meanwhile go together
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer.outputs[0].data, request.inputs[0].data * 2)
        assert answer.id == request.id


def test_max_rows_splits_merged_calls() -> None:
    inner = Doubler()
    _gather(CoalescingPredictor(inner, max_rows=4), [_request(float(i), rows=2) for i in range(7)])
    assert inner.calls == [2, 4, 4, 4]


def test_one_bad_request_does_not_fail_its_neighbours() -> None:
    inner = Doubler()
    answers = _gather(CoalescingPredictor(inner), [_request(1.0), _request(2.0), _request(-1.0), _request(3.0)])
    assert [type(a).__name__ for a in answers] == ["InferResponse", "InferResponse", "InvalidInput", "InferResponse"]
    assert str(answers[2]) == "input 'x': -1 is not allowed"
    assert inner.calls == [1, 3, 1, 1, 1]  # the merged call failed, so its three requests went one by one


def test_models_without_a_batch_dimension_are_never_merged() -> None:
    inner = Doubler(first_dim=4)
    _gather(CoalescingPredictor(inner), [_request(float(i)) for i in range(5)])
    assert inner.calls == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("rows", [1, 3])
def test_merged_grpc_calls_equal_single_calls(inference_server: RunningServer, digits_x: np.ndarray,
                                              rows: int) -> None:
    xs = [digits_x[i:i + rows] for i in range(0, 40, rows)]

    async def main() -> tuple[list[InferResponse], list[InferResponse]]:
        plain, merged = GrpcPredictor(inference_server.grpc), predictor_from_url(
            f"grpc://{inference_server.grpc}", coalesce=True)
        try:
            alone = [await plain.infer(InferRequest([Tensor("input", x)]), "digits") for x in xs]
            together = await asyncio.gather(*(merged.infer(InferRequest([Tensor("input", x)]), "digits") for x in xs))
            return alone, list(together)
        finally:
            await plain.close()
            await merged.close()

    alone, together = asyncio.run(main())
    for a, b in zip(alone, together, strict=True):
        assert [t.name for t in a.outputs] == [t.name for t in b.outputs]
        for ta, tb in zip(a.outputs, b.outputs, strict=True):
            np.testing.assert_array_equal(ta.data, tb.data)


def test_limits_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match=r"^max_calls must be a positive integer; got 0$"):
        CoalescingPredictor(Doubler(), max_calls=0)
    with pytest.raises(InvalidInput, match=r"^max_rows must be a positive integer; got 0$"):
        CoalescingPredictor(Doubler(), max_rows=0)
