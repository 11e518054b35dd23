"""KServe predictor for bench_serve.py: one ONNX model in ONNX Runtime behind KServe's Python ModelServer.

Runs in ``.venv-kserve`` (kserve==0.21.0, onnxruntime), the way a KServe user writes a custom predictor: a
``kserve.Model`` whose ``predict`` takes the Open Inference Protocol v2 ``InferRequest`` (REST or gRPC) and returns an
``InferResponse``. The session options are aiforge's: ``intra_op_num_threads=1``, ``inter_op_num_threads=1``.
Every KServe flag works (``--http_port``, ``--grpc_port``, ``--enable_latency_logging``, ...)::

    .venv-kserve/bin/python benchmarks/_serve_anchor/predictor.py --model_name cnn \\
        --model_path benchmarks/.data/serve/repo/cnn/1/model.onnx --http_port 9080 --grpc_port 9081
"""

from __future__ import annotations

import argparse
import uuid

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import from_np_dtype


class OnnxModel(kserve.Model):
    """An ONNX model answering v2 ``infer`` with ONNX Runtime on one thread."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.session: ort.InferenceSession | None = None
        self.output_names: list[str] = []
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        assert self.session is not None
        inputs = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        wanted = [output.name for output in payload.request_outputs] if payload.request_outputs else self.output_names
        results = self.session.run(wanted, inputs)
        outputs = [
            InferOutput(name=name, shape=list(array.shape), datatype=from_np_dtype(array.dtype), data=np.asarray(array))
            for name, array in zip(wanted, results, strict=True)
        ]
        return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name, infer_outputs=outputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_path", required=True, help="the model.onnx file")
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([OnnxModel(args.model_name, args.model_path)])
