"""export_sklearn / export_torch / add_model: round trips through ONNX Runtime equal the source model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aiforge.errors import InvalidInput, NotFittedError
from aiforge.serve.deploy.export import add_model, export_sklearn, export_torch


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


def test_sklearn_classifier_round_trip_into_repository(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    path = export_sklearn(model, tmp_path / "repo", n_features=4, name="iris")
    assert path == tmp_path / "repo" / "iris" / "1" / "model.onnx"

    session = _session(path)
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [("input", "tensor(float)", 4)]
    assert isinstance(session.get_inputs()[0].shape[0], str | type(None))  # dynamic batch dimension
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]  # no ZipMap: plain tensors
    label, proba = session.run(None, {"input": X})
    np.testing.assert_array_equal(label, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-4)

    # the next export of the same name is version 2; an existing version is never overwritten
    assert export_sklearn(model, tmp_path / "repo", n_features=4, name="iris").parent.name == "2"
    with pytest.raises(InvalidInput, match=r"model 'iris' already has version 1 in .*; pass another version, or "
                       r"none to add version 3"):
        export_sklearn(model, tmp_path / "repo", n_features=4, name="iris", version=1)
    assert export_sklearn(model, tmp_path / "repo", n_features=4, name="iris", version="7").parent.name == "7"


def test_sklearn_regressor_to_file(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.ensemble import RandomForestRegressor

    X, _ = iris
    target = X[:, 3] * 2.0 + 1.0
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X[:, :3], target)
    path = export_sklearn(model, tmp_path / "out" / "rf.onnx", n_features=3, sample=X[:, :3])
    assert path == tmp_path / "out" / "rf.onnx"
    (prediction,) = _session(path).run(None, {"input": X[:, :3]})
    np.testing.assert_allclose(prediction.ravel(), model.predict(X[:, :3]), atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rf.onnx"]  # no temporary file left


def test_sklearn_bad_inputs(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    with pytest.raises(NotFittedError, match=r"^LogisticRegression is not fitted; call fit\(X, y\) before exporting"):
        export_sklearn(LogisticRegression(), tmp_path / "m.onnx", n_features=4)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(InvalidInput, match=r"^n_features=3 but LogisticRegression was fitted on 4 features; "
                       r"pass n_features=4$"):
        export_sklearn(model, tmp_path / "m.onnx", n_features=3)
    with pytest.raises(InvalidInput, match=r"^n_features must be a positive integer; got 0$"):
        export_sklearn(model, tmp_path / "m.onnx", n_features=0)
    with pytest.raises(InvalidInput, match=r"^n_features must be a positive integer; got True$"):
        export_sklearn(model, tmp_path / "m.onnx", n_features=True)
    with pytest.raises(InvalidInput, match=r"is a folder; pass name='<model>' to add the model"):
        export_sklearn(model, tmp_path, n_features=4)
    with pytest.raises(InvalidInput, match=r"^model name 'a/b' is not a folder name"):
        export_sklearn(model, tmp_path, n_features=4, name="a/b")
    with pytest.raises(InvalidInput, match=r"^model must be an object with fit method; got 'model'$"):
        export_sklearn("model", tmp_path / "m.onnx", n_features=4)
    assert list(tmp_path.iterdir()) == []


def test_sklearn_mismatch_is_refused_and_nothing_written(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = iris
    model = LinearRegression().fit(X, y.astype(np.float64))
    model.predict = lambda rows: np.zeros(len(rows))  # what the converter cannot know about: the check must see it
    with pytest.raises(InvalidInput, match=r"^the exported ONNX model does not match the source model: the "
                       r"prediction differs by up to .* \(tolerance 0\.0001\)"):
        export_sklearn(model, tmp_path / "repo", n_features=4, name="lin", sample=X)
    assert list(tmp_path.iterdir()) == []  # not even the repository folder this export created


def test_torch_round_trip_with_dynamic_batch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.5), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.train()
    path = export_torch(net, torch.randn(2, 6), tmp_path / "repo", name="net")
    assert path == tmp_path / "repo" / "net" / "1" / "model.onnx"
    assert net.training  # the caller's mode is restored

    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    batch = torch.randn(5, 6)
    (got,) = session.run(None, {"input": batch.numpy()})
    net.eval()
    with torch.no_grad():
        want = net(batch).numpy()
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_torch_bad_inputs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(4, 2)
    with pytest.raises(InvalidInput, match=r"^module must be an instance of Module; got 'net'$"):
        export_torch("net", torch.randn(1, 4), tmp_path / "m.onnx")
    with pytest.raises(InvalidInput, match=r"^example must be an instance of Tensor; got array\(\[\[0\., 0\., 0\., "
                       r"0\.\]\]\)$"):
        export_torch(net, np.zeros((1, 4)), tmp_path / "m.onnx")
    with pytest.raises(InvalidInput, match=r"^example must be a torch.Tensor of shape \(batch, \.\.\.\) with "
                       r"batch >= 1; got a tensor of shape \(0, 4\)$"):
        export_torch(net, torch.zeros(0, 4), tmp_path / "m.onnx")
    with pytest.raises(InvalidInput, match=r"^Linear\(example\) failed on an example of shape \(1, 3\): "):
        export_torch(net, torch.randn(1, 3), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_add_model(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = iris
    source = export_sklearn(LinearRegression().fit(X, y), tmp_path / "lin.onnx", n_features=4)
    assert add_model(source, tmp_path / "repo", "lin") == tmp_path / "repo" / "lin" / "1" / "model.onnx"
    assert add_model(source, tmp_path / "repo", "lin").read_bytes() == source.read_bytes()
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InvalidInput, match=r"junk.onnx is not an ONNX model ONNX Runtime can load"):
        add_model(tmp_path / "junk.onnx", tmp_path / "repo", "lin")
    assert sorted(p.name for p in (tmp_path / "repo" / "lin").iterdir()) == ["1", "2"]
