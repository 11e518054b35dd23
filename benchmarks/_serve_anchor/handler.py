"""aiforge APS handler for bench_serve.py: the same pre/post-processing as the KServe transformer (``prepost.py``).

    aiforge serve aps benchmarks/_serve_anchor/handler.py:DigitsHandler --predictor grpc://127.0.0.1:8081 --model cnn
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aiforge.serve.aps.handler import Context, Handler
from aiforge.serve.protocol import InferRequest, InferResponse, Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepost import INPUT, OUTPUTS, to_answer, to_tensor


class DigitsHandler(Handler):
    """JSON payload -> ``input`` tensor -> the model -> ``{"label", "probability"}``."""

    def preprocess(self, payload: Any, context: Context) -> InferRequest:
        return InferRequest([Tensor(INPUT, to_tensor(payload))], outputs=[OUTPUTS[context.model]])

    def postprocess(self, response: InferResponse, context: Context) -> Any:
        return to_answer(response.outputs[0].data)
