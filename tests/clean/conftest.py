"""Data shared by the label-cleaning tests: digits with seeded label noise."""

from __future__ import annotations

import numpy as np
import pytest


def flip(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Symmetric noise: each label moves to a uniformly chosen other class with probability ``rate``."""
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    mask = rng.random(len(y)) < rate
    noisy = y.copy()
    noisy[mask] = (y[mask] + rng.integers(1, k, mask.sum())) % k
    return noisy


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """300 points, 3 well separated classes, 10% of the labels flipped (rows 0, 10, 20, ...)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    X = rng.normal(size=(300, 2)) * 0.5 + np.array([[0, 0], [5, 0], [0, 5]])[y]
    return X, y
