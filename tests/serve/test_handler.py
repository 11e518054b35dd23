"""APS handlers: the default JSON forms, finding a handler from a spec, and reusing a BATCH transform."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from aiforge.batch.transform import Transform
from aiforge.errors import InvalidInput
from aiforge.serve.aps.handler import Context, Handler, TransformHandler, load_handler
from aiforge.serve.protocol import InferRequest, InferResponse, Tensor

METADATA = {
    "name": "mlp", "versions": ["1"], "platform": "onnxruntime_onnx",
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}, {"name": "ids", "datatype": "INT64",
                                                                       "shape": [-1, 1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
}


def ctx() -> Context:
    return Context("r1", "mlp")


# -- default preprocess / postprocess -------------------------------------------------------------------------------


def test_default_preprocess_accepts_open_inference_protocol_bodies() -> None:
    body = {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "id": "a"}
    request = Handler().preprocess(body, ctx())
    assert isinstance(request, InferRequest)
    assert request.id == "a"
    assert request.inputs[0].name == "X"
    assert request.inputs[0].data.dtype == np.float32
    assert request.inputs[0].data.tolist() == [[1.0, 2.0, 3.0]]


def test_instances_go_to_the_first_model_input_with_its_datatype_after_bind() -> None:
    handler = Handler()
    unbound = handler.preprocess({"instances": [[1, 2, 3]]}, ctx())
    assert list(unbound) == ["input"]
    assert unbound["input"].dtype == np.int64  # no metadata: the array's own type
    handler.bind(METADATA)
    assert handler.input_name == "X"
    bound = handler.preprocess({"instances": [[1, 2, 3], [4, 5, 6]]}, ctx())
    assert list(bound) == ["X"]
    assert bound["X"].dtype == np.float32
    assert bound["X"].tolist() == [[1, 2, 3], [4, 5, 6]]


def test_float_rows_become_float32_and_a_set_input_name_wins_over_metadata() -> None:
    class Named(Handler):
        input_name = "ids"

    handler = Named()
    handler.bind(METADATA)
    out = handler.preprocess({"inputs": [[7], [8]]}, ctx())
    assert out["ids"].dtype == np.int64
    assert Handler().preprocess({"instances": [[0.5]]}, ctx())["input"].dtype == np.float32


def test_nulls_become_nan_before_the_model_is_known() -> None:
    """Without the model's metadata a row with a null is still a row of numbers, with a missing one (NaN), so the
    inference server can name it; not an array of Python objects."""
    handler = Handler()
    x = handler.preprocess({"instances": [[1.0, None], [None, 2]]}, Context("r", "m"))
    assert isinstance(x, dict) and x["input"].dtype == np.float32
    np.testing.assert_array_equal(x["input"], np.array([[1.0, np.nan], [np.nan, 2.0]], np.float32))
    words = handler.preprocess({"instances": [["a", None]]}, Context("r", "m"))
    assert isinstance(words, dict) and words["input"].dtype == object  # text with a gap stays text


def test_named_inputs_use_each_inputs_datatype() -> None:
    handler = Handler()
    handler.bind(METADATA)
    out = handler.preprocess({"inputs": {"X": [[1, 2, 3]], "ids": [[5]]}}, ctx())
    assert out["X"].dtype == np.float32 and out["ids"].dtype == np.int64
    assert out["ids"].tolist() == [[5]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "the body must be a JSON object with 'inputs' or 'instances'; got list"),
        ({"rows": [1]}, "the body needs 'inputs' .* got keys: 'rows'"),
        ({"instances": []}, "the body needs 'inputs'"),
        ({"instances": [[1, 2], [3]]}, "input 'X': expected a \\(nested\\) list of FP32 values of one shape"),
        ({"inputs": {"X": [["a", "b", "c"]]}}, "input 'X': expected a \\(nested\\) list of FP32 values of one shape"),
        ({"inputs": [{"name": "X", "shape": [2], "datatype": "FP32", "data": [1]}]},
         "input 'X': shape \\[2\\] needs 2 values but 'data' has 1"),
    ],
)
def test_default_preprocess_rejects_bad_bodies(body: object, message: str) -> None:
    handler = Handler()
    handler.bind(METADATA)
    with pytest.raises(InvalidInput, match=message):
        handler.preprocess(body, ctx())


def test_default_postprocess_returns_outputs_and_business_metadata() -> None:
    response = InferResponse([Tensor("y", np.array([[0.25, 0.75]], dtype=np.float32)),
                              Tensor("label", np.array([1], dtype=np.int64))], "mlp", "1")
    plain = Handler().postprocess(response, ctx())
    assert list(plain) == ["outputs"]
    assert plain["outputs"]["y"].tolist() == [[0.25, 0.75]]
    assert plain["outputs"]["label"].tolist() == [1]
    context = ctx()
    context.metadata["segment"] = "gold"
    assert Handler().postprocess(response, context)["metadata"] == {"segment": "gold"}


def test_default_postprocess_turns_bytes_into_text() -> None:
    response = InferResponse([Tensor("label", np.array([[b"cat"], [b"dog"]], dtype=object))])
    assert Handler().postprocess(response, ctx()) == {"outputs": {"label": [["cat"], ["dog"]]}}


# -- load_handler ---------------------------------------------------------------------------------------------------

HANDLERS = """
from aiforge.serve.aps.handler import Handler


class Upper(Handler):
    def postprocess(self, response, context):
        return {"kind": "upper"}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("spec", [None, "", "default", "  default "])
def test_default_spec_gives_the_base_handler(spec: str | None) -> None:
    assert type(load_handler(spec)) is Handler


def test_a_file_with_one_handler_needs_no_class_name(tmp_path: Path) -> None:
    path = write(tmp_path / "one.py", HANDLERS)
    handler = load_handler(str(path))
    assert type(handler).__name__ == "Upper"
    assert handler.postprocess(InferResponse([]), ctx()) == {"kind": "upper"}


def test_file_and_class(tmp_path: Path) -> None:
    path = write(tmp_path / "two.py", HANDLERS + "\n\nclass Lower(Upper):\n    blocking = True\n")
    handler = load_handler(f"{path}:Lower")
    assert type(handler).__name__ == "Lower" and handler.blocking is True


def test_module_and_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package / "handlers.py", HANDLERS + "\n\ninstance = Upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(load_handler("mypkg.handlers:Upper")).__name__ == "Upper"
    assert type(load_handler("mypkg.handlers")).__name__ == "Upper"
    assert load_handler("mypkg.handlers:instance") is load_handler("mypkg.handlers:instance")


def test_a_file_can_import_modules_beside_it(tmp_path: Path) -> None:
    write(tmp_path / "helpers_for_aps_test.py", "FACTOR = 3\n")
    path = write(tmp_path / "uses.py", """
        from helpers_for_aps_test import FACTOR
        from aiforge.serve.aps.handler import Handler

        class Scaled(Handler):
            factor = FACTOR
    """)
    assert load_handler(str(path)).factor == 3  # type: ignore[attr-defined]


def test_a_duck_typed_class_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "duck.py", """
        class Duck:
            def preprocess(self, payload, context):
                return {"x": payload}

            def postprocess(self, response, context):
                return {}
    """)
    assert type(load_handler(f"{path}:Duck")).__name__ == "Duck"


def test_load_handler_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(InvalidInput, match=f"handler file {missing} does not exist; give a .py file"):
        load_handler(str(missing))
    none = write(tmp_path / "none.py", "from aiforge.serve.aps.handler import Handler\nX = 1\n")
    with pytest.raises(InvalidInput, match=r"none.py defines no Handler subclass; define a class that extends"):
        load_handler(str(none))
    two = write(tmp_path / "two.py", HANDLERS + "\n\nclass Lower(Upper):\n    pass\n")
    with pytest.raises(InvalidInput, match=r"two.py defines 2 Handler subclasses \(Upper, Lower\); name the one"):
        load_handler(str(two))
    with pytest.raises(InvalidInput, match=r"two.py has no 'Middle'; handler classes it defines: Upper, Lower"):
        load_handler(f"{two}:Middle")
    other = write(tmp_path / "other.py", "class NotOne:\n    pass\n\nVALUE = 3\n")
    with pytest.raises(InvalidInput, match=r"other.py:NotOne is not a handler: expected a subclass of .* got the "
                                           r"class NotOne"):
        load_handler(f"{other}:NotOne")
    with pytest.raises(InvalidInput, match=r"other.py:VALUE is not a handler: .* got an object of type int"):
        load_handler(f"{other}:VALUE")
    broken = write(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(InvalidInput, match=r"cannot import handler file .*broken.py: RuntimeError: boom"):
        load_handler(str(broken))
    needs = write(tmp_path / "needs.py", HANDLERS + "\n\nclass Args(Upper):\n    def __init__(self, path):\n"
                                                    "        self.path = path\n")
    with pytest.raises(InvalidInput, match=r"handler .*needs.py:Args needs arguments \(path\); the APS creates"):
        load_handler(f"{needs}:Args")
    with pytest.raises(InvalidInput, match=r"handler module 'no_such_pkg_xyz.mod' not found; give 'pkg.module:Class'"):
        load_handler("no_such_pkg_xyz.mod:Handler")


# -- TransformHandler -----------------------------------------------------------------------------------------------

FEATURES = [
    {"numeric": {"column": "age", "scale": "standardize"}},
    {"numeric": {"column": "income", "log1p": True, "scale": "minmax"}},
    {"categorical": {"column": "city", "encoding": "onehot", "top_k": 2}},
]
TRAIN = {"age": [20, 30, 40, 50], "income": [1000.0, 2000.0, 5000.0, 8000.0],
         "city": ["Seoul", "Busan", "Seoul", "Incheon"]}
RECORDS = [{"age": 31, "income": 2500.0, "city": "Seoul"}, {"age": 64, "income": 100.0, "city": "Daegu"},
           {"age": 18, "income": None, "city": None}]


@pytest.fixture(scope="module")
def transform_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("features")
    return Transform(features=FEATURES).fit(pa.table(TRAIN)).save(folder)


def test_transform_handler_gives_exactly_the_training_features(transform_path: Path) -> None:
    handler = TransformHandler(transform_path)
    handler.load()
    transform = Transform.load(transform_path)
    one = handler.preprocess(RECORDS[0], ctx())
    assert list(one) == ["input"]
    assert one["input"].dtype == np.float32 and one["input"].shape == (1, len(transform.feature_names_))
    np.testing.assert_array_equal(one["input"][0], transform.transform_record(RECORDS[0]))
    many = handler.preprocess(RECORDS, ctx())["input"]
    np.testing.assert_array_equal(many, np.stack([transform.transform_record(r) for r in RECORDS]))
    assert handler.blocking is False


def test_transform_handler_takes_the_models_first_input_name(transform_path: Path) -> None:
    handler = load_handler(f"transform:{transform_path}")
    assert isinstance(handler, TransformHandler)
    handler.load()
    handler.bind({"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [-1, 5]}]})
    assert list(handler.preprocess(RECORDS[0], ctx())) == ["float_input"]
    named = TransformHandler(transform_path, input_name="features")
    named.load()
    named.bind(METADATA)
    assert list(named.preprocess(RECORDS[0], ctx())) == ["features"]


def test_a_subclass_can_name_its_artifact(transform_path: Path) -> None:
    class Scored(TransformHandler):
        source = transform_path

        def postprocess(self, response: InferResponse, context: Context) -> dict[str, float]:
            return {"score": float(response.outputs[0].data[0, 0])}

    handler = Scored()
    handler.load()
    assert handler.preprocess(RECORDS[1], ctx())["input"].shape == (1, 5)


def test_transform_handler_errors(transform_path: Path, tmp_path: Path) -> None:
    handler = TransformHandler(transform_path)
    with pytest.raises(InvalidInput, match=r"TransformHandler.load\(\) has not run; call it before preprocess"):
        handler.preprocess(RECORDS[0], ctx())
    handler.load()
    with pytest.raises(InvalidInput, match="record has no key 'city'; the transform reads: age, income, city"):
        handler.preprocess({"age": 1, "income": 2.0}, ctx())
    with pytest.raises(InvalidInput, match=r"the body must be a JSON record .* got an empty list"):
        handler.preprocess([], ctx())
    with pytest.raises(InvalidInput, match=r"the body must be a JSON record .* got str"):
        handler.preprocess("age=3", ctx())
    with pytest.raises(InvalidInput, match="record 1 of the body must be a JSON object; got int"):
        handler.preprocess([RECORDS[0], 3], ctx())
    with pytest.raises(InvalidInput, match="record value 'old' for 'age' is not a int64"):
        handler.preprocess({"age": "old", "income": 1.0, "city": "Seoul"}, ctx())
    with pytest.raises(InvalidInput, match="record value 'old' for 'age' is not a int64"):
        handler.preprocess([RECORDS[0], {"age": "old", "income": 1.0, "city": "Seoul"}], ctx())
    with pytest.raises(InvalidInput, match="record has no key 'income'"):
        handler.preprocess([RECORDS[0], {"age": 1, "city": "Seoul"}], ctx())
    with pytest.raises(InvalidInput, match="TransformHandler has no transform artifact; pass TransformHandler"):
        TransformHandler().load()
    with pytest.raises(InvalidInput, match="cannot read transform artifact"):
        TransformHandler(tmp_path / "missing.json").load()


def _guide_block(marker: str) -> str:
    """The fenced Python block of docs/guide.md that contains ``marker``, exactly as a user copies it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "guide.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one Python block with {marker!r} in docs/guide.md, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("many", [False, True], ids=["one record", "a list of records"])
def test_the_guides_digits_handler_takes_one_record_or_a_list(transform_path: Path, many: bool) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_guide_block("class Digits(TransformHandler)"), "docs/guide.md", "exec"), namespace)
    digits = namespace["Digits"]
    assert isinstance(digits, type)
    handler = digits()
    handler.source = transform_path  # the guide's ref names a snapshot this test has not made; the file is the same
    handler.load()
    records = [dict(r, customer_id=f"c{i}") for i, r in enumerate(RECORDS[:2])]
    payload = records if many else records[0]
    context = ctx()
    inputs = handler.preprocess(payload, context)
    rows = len(records) if many else 1
    assert inputs["input"].shape == (rows, 5)
    probabilities = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], dtype=np.float32)[:rows]
    response = InferResponse([Tensor("label", np.array([1, 0])[:rows]), Tensor("probabilities", probabilities)])
    out = handler.postprocess(response, context)
    assert out == {"digit": [1, 0][:rows], "confidence": pytest.approx([0.7, 0.6][:rows]),
                   "customers": ["c0", "c1"][:rows]}
