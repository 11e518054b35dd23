"""KServe transformer for bench_serve.py: the APS's pre/post-processing in KServe's Python ModelServer.

Runs in ``.venv-kserve``. Clients POST the user's JSON payload to ``/v1/models/<name>:predict``; ``preprocess``
turns it into a v2 ``InferRequest`` with the same code as aiforge's benchmark handler (``prepost.py``), KServe sends it
to the predictor (``--predictor_host HOST:PORT``, ``--predictor_protocol v2`` for REST or ``grpc-v2`` for gRPC), and
``postprocess`` answers ``{"label", "probability"}``::

    .venv-kserve/bin/python benchmarks/_serve_anchor/transformer.py --model_name cnn --output output \\
        --predictor_host 127.0.0.1:9081 --predictor_protocol grpc-v2 --http_port 9090 --grpc_port 9091
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import kserve
from kserve import InferInput, InferRequest, InferResponse
from kserve.protocol.infer_type import RequestedOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepost import INPUT, to_answer, to_tensor


class Transformer(kserve.Model):
    """JSON payload -> ``input`` tensor -> predictor -> ``{"label", "probability"}`` from output ``output``."""

    def __init__(self, name: str, output: str) -> None:
        super().__init__(name)
        self.output = output
        self.ready = True

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> InferRequest:
        array = to_tensor(payload)
        tensor = InferInput(name=INPUT, shape=list(array.shape), datatype="FP32", data=array)
        return InferRequest(
            model_name=self.name, infer_inputs=[tensor], request_outputs=[RequestedOutput(name=self.output)]
        )

    def postprocess(
        self, result: InferResponse, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> dict[str, Any]:
        output = result.get_output_by_name(self.output)
        if output is None:
            raise ValueError(f"the predictor's answer has no output {self.output!r}")
        return to_answer(output.as_numpy())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--output", default="probabilities", help="the model output holding the probabilities")
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([Transformer(args.model_name, args.output)])
