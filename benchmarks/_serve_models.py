"""The two models and payloads of bench_serve.py, built offline and deterministically.

- ``mlp``: scikit-learn ``MLPClassifier`` (256, 128) on the 64 digits features (scaled to 0..1), ``random_state=0``,
  exported with ``aiforge.serve.deploy.export.export_sklearn`` (skl2onnx, zipmap off): input ``input`` float32 (-1, 64),
  outputs ``label`` and ``probabilities``.
- ``cnn``: a small LeNet-style CNN on 1x28x28 (the 8x8 digits upsampled 3x and padded), conv(1->16, 3) - relu -
  pool 2 - conv(16->32, 3) - relu - pool 2 - fc(1568->2048) - relu - fc(2048->10) - softmax, ``torch.manual_seed(0)``
  and two quick epochs; exported with ``export_torch`` (dynamic batch axis): input ``input`` float32 (-1, 1, 28, 28),
  output ``output`` (the softmax probabilities). Its wide fc(1568->2048) head (13 MB of weights) makes one sample
  cost most of a millisecond in ONNX Runtime, mostly reading weights, which a batch shares: the case dynamic batching
  is for.

Both go into a model repository ``REPO/<name>/1/model.onnx``; ``build(root)`` also writes the payloads:
``<name>.json`` (what a user sends to the APS / the KServe transformer) and ``<name>_v2.json`` (the same sample,
already pre-processed, as an Open Inference Protocol v2 JSON request for the inference server).

    python benchmarks/_serve_models.py [ROOT]     # default benchmarks/.data/serve
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

DATA_ROOT = Path(__file__).resolve().parent / ".data" / "serve"
sys.path.insert(0, str(Path(__file__).resolve().parent / "_serve_anchor"))
from prepost import OUTPUTS  # noqa: E402


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The sklearn digits: X (1797, 64) float32 pixels 0..16, y (1797,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def upsample(x: np.ndarray) -> np.ndarray:
    """(N, 64) 8x8 digits -> (N, 1, 28, 28): each pixel repeated 3x3, then a 2-pixel zero border."""
    images = x.reshape(-1, 8, 8)
    big = np.kron(images, np.ones((1, 3, 3), dtype=np.float32))
    return np.pad(big, ((0, 0), (2, 2), (2, 2)))[:, None, :, :].astype(np.float32)


def build_mlp(path: Path) -> None:
    from sklearn.neural_network import MLPClassifier

    from aiforge.serve.deploy.export import export_sklearn

    x, y = digits()
    model = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=300, random_state=0).fit(x / 16.0, y)
    export_sklearn(model, path, n_features=64, sample=x[:64] / 16.0)


def make_cnn() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 2048),
        nn.ReLU(),
        nn.Linear(2048, 10),
    )


def build_cnn(path: Path, epochs: int = 2) -> None:
    import torch
    from torch import nn

    from aiforge.serve.deploy.export import export_torch

    torch.set_num_threads(1)
    x, y = digits()
    images, labels = torch.from_numpy(upsample(x) / 16.0), torch.from_numpy(y)
    net = make_cnn()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(images[batch]), labels[batch]).backward()
            optimizer.step()
    model = nn.Sequential(*net, nn.Softmax(dim=1)).eval()
    export_torch(model, images[:4], path)


def payloads() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per model: (the user's JSON payload, the pre-processed OIP v2 request), both for digits sample 0."""
    x, _ = digits()
    features = x[0]
    image = upsample(x[:1])[0, 0]
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name, user, tensor in (
        ("mlp", {"features": features.astype(int).tolist()}, (features / 16.0).reshape(1, 64)),
        ("cnn", {"image": image.astype(int).tolist()}, (image / 16.0).reshape(1, 1, 28, 28)),
    ):
        v2 = {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(tensor.shape),
                    "data": tensor.astype(np.float32).reshape(-1).tolist(),
                }
            ],
            "outputs": [{"name": OUTPUTS[name]}],
        }
        out[name] = (user, v2)
    return out


def build(root: Path = DATA_ROOT, *, force: bool = False) -> Path:
    """Write ``root/repo/{mlp,cnn}/1/model.onnx`` and the payloads (kept when present unless ``force``)."""
    repo = root / "repo"
    for name, builder in (("mlp", build_mlp), ("cnn", build_cnn)):
        path = repo / name / "1" / "model.onnx"
        if force or not path.exists():
            print(f"building {name} -> {path}", flush=True)
            builder(path)
    for name, (user, v2) in payloads().items():
        (root / f"{name}.json").write_text(json.dumps(user, separators=(",", ":")))
        (root / f"{name}_v2.json").write_text(json.dumps(v2, separators=(",", ":")))
    return repo


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_ROOT, force=True))
