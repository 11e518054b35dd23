"""The model repository: layout, config.yaml, signatures, input validation and its errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aiforge.errors import InvalidInput, ModelNotFound, NotFound
from aiforge.serve.inference.repository import ModelConfig, ModelRepository, TensorSpec


def test_load_names_versions_and_newest(onnx_repo: Path) -> None:
    repo = ModelRepository.load(onnx_repo)
    assert repo.names() == ["digits", "fixed"]
    assert repo.versions("digits") == ["1", "2"]
    assert repo.get("digits").version == "2"
    assert repo.get("digits", "").version == "2"
    assert repo.get("digits", "1").version == "1"
    assert repo.get("digits", "1").path == onnx_repo / "digits" / "1" / "model.onnx"


def test_signature_metadata_and_batchable(onnx_repo: Path) -> None:
    repo = ModelRepository.load(onnx_repo)
    digits = repo.get("digits", "1")
    assert digits.inputs == [TensorSpec("input", "FP32", (-1, 64))]
    assert digits.outputs == [TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 10))]
    assert digits.batchable is True
    assert digits.config == ModelConfig()
    assert digits.metadata(repo.versions("digits")) == {
        "name": "digits",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    fixed = repo.get("fixed")
    assert fixed.batchable is False
    assert fixed.metadata()["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [4, 3]}]
    assert fixed.metadata()["versions"] == ["1"]


def test_run_equals_onnxruntime(onnx_repo: Path, digits_x: np.ndarray) -> None:
    model = ModelRepository.load(onnx_repo).get("digits", "1")
    x = digits_x[:5]
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": x})
    out = model.run(model.validate({"input": x}))
    assert list(out) == ["label", "probabilities"]
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    assert list(model.run({"input": x}, ["probabilities"])) == ["probabilities"]


def test_unknown_model_and_version(onnx_repo: Path) -> None:
    repo = ModelRepository.load(onnx_repo)
    with pytest.raises(ModelNotFound, match=r"^model 'nope' is not in the repository; available models: digits, "
                                            r"fixed$"):
        repo.get("nope")
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no version '7'; available versions: 1, 2$"):
        repo.get("digits", "7")
    with pytest.raises(ModelNotFound):
        repo.versions("nope")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"input": np.zeros((2, 64))}, "input 'input': expected datatype FP32 with shape [-1, 64], got FP64"),
        ({"input": np.zeros((2, 63), np.float32)},
         "input 'input': expected shape [-1, 64] (-1 = any size), got [2, 63]"),
        ({"input": np.zeros(64, np.float32)}, "input 'input': expected shape [-1, 64] (-1 = any size), got [64]"),
        ({"x": np.zeros((2, 64), np.float32)}, "model 'digits' expects inputs 'input'; missing 'input'; unknown 'x'"),
        ({"input": np.zeros((1, 64), np.float32), "y": np.zeros(1)},
         "model 'digits' expects inputs 'input'; unknown 'y'"),
    ],
)
def test_validate_names_the_input_and_expectation(onnx_repo: Path, inputs: dict[str, np.ndarray],
                                                  message: str) -> None:
    model = ModelRepository.load(onnx_repo).get("digits")
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        model.validate(inputs)


MISSING = ("model 'digits' was not trained with missing values: fill them in, or set allow_nan: true in its "
           "config.yaml if it takes NaN")


def test_missing_values_are_refused_unless_the_model_allows_nan(onnx_repo: Path) -> None:
    model = ModelRepository.load(onnx_repo).get("digits")
    assert model.config.allow_nan is False
    x = np.zeros((2, 64), np.float32)
    x[1, 5] = np.nan
    one = "input 'input' has 1 missing value (null/NaN) at [1, 5]; "
    with pytest.raises(InvalidInput, match=f"^{re.escape(one + MISSING)}$"):
        model.validate({"input": x})
    x[:] = np.nan
    every = "input 'input' has 128 missing values (null/NaN) at [0, 0], [0, 1], [0, 2] and 125 more; "
    with pytest.raises(InvalidInput, match=f"^{re.escape(every + MISSING)}$"):
        model.validate({"input": x})
    infinite = np.full((1, 64), np.inf, np.float32)  # a value, not a missing one
    assert model.validate({"input": infinite})["input"] is infinite

    (onnx_repo / "digits" / "config.yaml").write_text("allow_nan: true\n")
    repository = ModelRepository.load(onnx_repo)
    allowed = repository.get("digits")
    assert allowed.config == ModelConfig(allow_nan=True)
    assert allowed.validate({"input": x})["input"] is x
    with pytest.raises(InvalidInput, match=r"^input 'x' has 1 missing value \(null/NaN\) at \[3, 2\]; model 'fixed' "):
        repository.get("fixed").validate({"x": np.array([[0, 0, 0]] * 3 + [[0, 0, np.nan]], np.float32)})


def test_fixed_shape_is_enforced(onnx_repo: Path) -> None:
    model = ModelRepository.load(onnx_repo).get("fixed")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(model.run(model.validate({"x": x}))["y"], 2 * x)
    with pytest.raises(InvalidInput, match=re.escape("input 'x': expected shape [4, 3] (-1 = any size), got [2, 3]")):
        model.validate({"x": x[:2]})


def test_unknown_output(onnx_repo: Path) -> None:
    model = ModelRepository.load(onnx_repo).get("digits")
    with pytest.raises(InvalidInput, match=r"^model 'digits' has no output 'score'; its outputs are 'label', "
                                           r"'probabilities'$"):
        model.output_names(["score"])


def test_config_yaml_and_overrides(onnx_repo: Path) -> None:
    (onnx_repo / "digits" / "config.yaml").write_text("max_batch_size: 8\nmax_queue_delay_ms: 2.5\n")
    repo = ModelRepository.load(onnx_repo)
    assert repo.get("digits").config == ModelConfig(max_batch_size=8, max_queue_delay_ms=2.5)
    assert repo.get("fixed").config == ModelConfig()
    repo = ModelRepository.load(onnx_repo, overrides={"max_batch_size": 4, "max_queue_size": None,
                                                      "intra_op_threads": 2})
    assert repo.get("digits").config == ModelConfig(max_batch_size=4, max_queue_delay_ms=2.5, intra_op_threads=2)
    assert repo.get("fixed").config == ModelConfig(max_batch_size=4, intra_op_threads=2)


def test_config_yaml_unknown_key(onnx_repo: Path) -> None:
    path = onnx_repo / "digits" / "config.yaml"
    path.write_text("max_batch: 8\n")
    with pytest.raises(InvalidInput, match=re.escape(
        f"{path}: unknown key 'max_batch'; allowed keys: max_batch_size, max_queue_delay_ms, max_queue_size, "
        "intra_op_threads, allow_nan"
    )):
        ModelRepository.load(onnx_repo)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size: lots\n", "'max_batch_size' must be a number (int), got 'lots'"),
        ("max_batch_size: 2.5\n", "'max_batch_size' must be a number (int), got 2.5"),
        ("max_queue_size: 0\n", "'max_queue_size' must be >= 1, got 0"),
        ("allow_nan: 1\n", "'allow_nan' must be true or false, got 1"),
        ("allow_nan: maybe\n", "'allow_nan' must be true or false, got 'maybe'"),
        ("- 1\n", "must be a mapping of settings, got list"),
    ],
)
def test_config_yaml_bad_values(onnx_repo: Path, text: str, message: str) -> None:
    path = onnx_repo / "digits" / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        ModelRepository.load(onnx_repo)


def test_bad_override(onnx_repo: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^overrides: unknown key 'batch'; allowed keys: "):
        ModelRepository.load(onnx_repo, overrides={"batch": 3})


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(NotFound, match=re.escape(
        f"model repository {missing} does not exist or is not a folder; expected {missing}/<model>/<version>/model.onnx"
    )):
        ModelRepository.load(missing)


def test_empty_repository(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=re.escape(f"model repository {tmp_path} holds no model")):
        ModelRepository.load(tmp_path)


def test_model_without_versions(onnx_repo: Path) -> None:
    (onnx_repo / "empty").mkdir()
    (onnx_repo / "empty" / "latest").mkdir()
    with pytest.raises(InvalidInput, match=re.escape(
        f"model 'empty' in {onnx_repo} has no version folder; expected {onnx_repo / 'empty'}/1/model.onnx"
    )):
        ModelRepository.load(onnx_repo)


def test_version_without_model_file(onnx_repo: Path) -> None:
    (onnx_repo / "digits" / "3").mkdir()
    with pytest.raises(InvalidInput, match=re.escape(
        f"model 'digits' version 3 has no model.onnx; expected {onnx_repo / 'digits' / '3' / 'model.onnx'}"
    )):
        ModelRepository.load(onnx_repo)


def test_unreadable_onnx(onnx_repo: Path) -> None:
    path = onnx_repo / "digits" / "2" / "model.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(InvalidInput, match=re.escape(
        f"model 'digits' version 2: {path} is not a readable ONNX model"
    )) as info:
        ModelRepository.load(onnx_repo)
    assert str(info.value).endswith(
        "export it again (aiforge.serve.deploy.export_sklearn or export_torch) or remove the version folder"
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_non_tensor_output_is_refused(tmp_path: Path, onnx_repo: Path, digits_x: np.ndarray) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    _, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=5).fit(digits_x[:200], y[:200])
    onx = to_onnx(model, digits_x[:1], target_opset=17)  # zipmap on: probabilities become a sequence of maps
    shutil.rmtree(onnx_repo / "digits" / "2")
    (onnx_repo / "digits" / "1" / "model.onnx").write_bytes(onx.SerializeToString())
    with pytest.raises(InvalidInput, match=r"^model 'digits' version 1: 'output_probability' has type "
                                           r"seq\(map\(int64,tensor\(float\)\)\); only tensors can be served"):
        ModelRepository.load(onnx_repo)


def test_what_a_killed_export_or_a_hand_made_repository_leaves_is_read_as_before(onnx_repo: Path) -> None:
    (onnx_repo / "digits" / ".staging-3-123-abc").mkdir()  # a staging folder whose writer died
    (onnx_repo / ".staging").mkdir()
    (onnx_repo / "fixed" / "1").rename(onnx_repo / "fixed" / "01")
    repo = ModelRepository.load(onnx_repo)
    assert repo.names() == ["digits", "fixed"]
    assert repo.versions("digits") == ["1", "2"]
    assert repo.versions("fixed") == ["1"]
    assert repo.get("fixed").path == onnx_repo / "fixed" / "01" / "model.onnx"


def test_a_repository_written_by_the_model_store_is_served(tmp_path: Path, onnx_repo: Path) -> None:
    from aiforge.workspace import ModelStore

    store = ModelStore(tmp_path / "written")
    for version in ("1", "2"):
        store.write_version("digits", (onnx_repo / "digits" / version / "model.onnx").read_bytes())
    repo = ModelRepository.load(store.root)
    assert repo.versions("digits") == ["1", "2"]
    assert repo.get("digits").path == store.model_file("digits", 2)
