"""Pre- and post-processing shared by the aiforge APS handler and the KServe transformer of bench_serve.py.

Pure numpy, so that both sides (aiforge's venv and the ``.venv-kserve`` of the anchor) run the very same code:

- ``{"features": [64 numbers]}`` (digits pixels 0..16) -> ``input`` float32 (1, 64), scaled to 0..1 (the MLP);
- ``{"image": 28 x 28 numbers}`` (pixels 0..16) -> ``input`` float32 (1, 1, 28, 28), scaled to 0..1 (the CNN);
- the model's ``probabilities`` (1, 10) -> ``{"label": argmax, "probability": max}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT = "input"

def to_tensor(payload: Any) -> np.ndarray:
    """The model input of one JSON payload; ``ValueError`` naming the expected keys when it has neither."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object with 'features' or 'image', got {type(payload).__name__}")
    array: np.ndarray
    if "features" in payload:
        array = np.asarray(payload["features"], dtype=np.float32).reshape(1, 64)
    elif "image" in payload:
        array = np.asarray(payload["image"], dtype=np.float32).reshape(1, 1, 28, 28)
    else:
        raise ValueError(f"expected a JSON object with 'features' or 'image', got keys {sorted(payload)}")
    return array / np.float32(16.0)


def to_answer(probabilities: np.ndarray) -> dict[str, Any]:
    """``{"label", "probability"}`` of the first row of a (1, K) probability array."""
    row = np.asarray(probabilities).reshape(-1)
    label = int(row.argmax())
    return {"label": label, "probability": round(float(row[label]), 6)}


#: The output holding the probabilities, per model (the names aiforge.serve.deploy.export gives them).
OUTPUTS = {"mlp": "probabilities", "cnn": "output"}
