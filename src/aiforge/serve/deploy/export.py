"""Export scikit-learn and PyTorch models to ONNX, checked against the source model, into a model repository.

Every export is verified before it lands: ONNX Runtime runs the written file on sample inputs and its outputs must
match the source model's within 1e-4, so a converter that silently changes a model fails here, not in production.
A file is written under a temporary name, a new version of a repository model in a staging folder
(:class:`aiforge.workspace.models.ModelStore`), and renamed into place, so a failed export never leaves half a model.

Both exporters name the input ``input`` (float32, first dimension dynamic, so the inference server can batch).
scikit-learn classifiers get plain tensor outputs ``label`` and ``probabilities`` (no ZipMap); regressors ``variable``;
PyTorch modules ``output``::

    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression().fit(X, y)
    export_sklearn(clf, "models", n_features=X.shape[1], name="churn")   # -> models/churn/1/model.onnx
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from aiforge.errors import InvalidInput, NotFittedError
from aiforge.validation import HasMethods, Interval, validate_params
from aiforge.workspace.models import ModelStore

__all__ = ["add_model", "export_sklearn", "export_torch"]

TOLERANCE = 1e-4
OPSET = 17


# -- where the file goes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Destination:
    """Where an export lands: ``file``, which is version ``version`` of model ``name`` when ``store`` is set."""

    file: Path
    store: ModelStore | None = None
    name: str = ""
    version: int = 0


def _destination(path_or_repo: str | os.PathLike[str], name: str | None, version: int | str | None) -> _Destination:
    """Check where the model goes before any work is done, so a bad name or taken version fails fast."""
    target = Path(path_or_repo).expanduser()
    if name is None:
        if version is not None:
            raise InvalidInput(f"version={version!r} needs name=: pass the model name to add it to a model repository")
        if target.is_dir():
            raise InvalidInput(
                f"{target} is a folder; pass name='<model>' to add the model to that model repository, "
                "or a file path such as model.onnx"
            )
        return _Destination(file=target)
    store = ModelStore(target)
    number = store.next_version(name, version)
    return _Destination(store.model_file(name, number), store, name, number)


def _write_verified(data: bytes, dest: _Destination, check: Callable[[Path], None]) -> Path:
    """Write ``data`` where ``dest`` says once ``check`` accepts it; a failed check leaves nothing behind."""
    if dest.store is not None:
        return dest.store.write_version(dest.name, data, version=dest.version, check=check)
    file = dest.file
    created = not file.parent.exists()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx.tmp", dir=file.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        check(tmp)
        tmp.replace(file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created and not any(file.parent.iterdir()):
            file.parent.rmdir()  # leave no empty folder behind
        raise
    return file


def add_model(
    model_file: str | os.PathLike[str], repo: str | os.PathLike[str], name: str, *, version: int | str | None = None
) -> Path:
    """Copy an existing ONNX file into a model repository as ``repo/<name>/<version>/model.onnx``.

    Parameters
    ----------
    model_file : path
        The ONNX file.
    repo : path
        The model repository (created if missing).
    name : str
        The model name (a folder name).
    version : int, optional
        The version to write; ``None`` = one more than the newest (1 for a new model). An existing version is never
        overwritten.

    Returns
    -------
    Path
        The written ``model.onnx``.

    Raises
    ------
    InvalidInput
        The file is missing or not an ONNX model ONNX Runtime can load, or the name or version is not acceptable.
    """
    source = Path(model_file)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read ONNX model {source}: {exc.strerror or exc}") from exc
    dest = _destination(repo, name, version)
    return _write_verified(data, dest, lambda path: _session(path, source=str(source)))


# -- verification -----------------------------------------------------------------------------------------------------


def _session(path: Path, *, source: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise InvalidInput(f"{source} is not an ONNX model ONNX Runtime can load: {exc}") from exc


def _compare(what: str, expected: Any, got: Any) -> None:
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape and expected.size == got.size:
        got = got.reshape(expected.shape)  # (N,) vs (N, 1) for single-output regressors
    if expected.shape != got.shape:
        raise InvalidInput(
            f"the exported ONNX model does not match the source model: {what} has shape {got.shape} in ONNX "
            f"but {expected.shape} in the source model"
        )
    if expected.dtype.kind in "fc" or got.dtype.kind in "fc":
        diff = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)))) if expected.size else 0.0
        if not np.allclose(got.astype(np.float64), expected.astype(np.float64), rtol=TOLERANCE, atol=TOLERANCE):
            raise InvalidInput(
                f"the exported ONNX model does not match the source model: {what} differs by up to {diff:.3g} "
                f"(tolerance {TOLERANCE:g}); the converter does not reproduce this model faithfully"
            )
    elif not np.array_equal(expected.astype(got.dtype) if expected.dtype != got.dtype else expected, got):
        raise InvalidInput(
            f"the exported ONNX model does not match the source model: {what} differs on "
            f"{int(np.sum(expected != got))} of {expected.size} values"
        )


# -- scikit-learn -----------------------------------------------------------------------------------------------------


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def export_sklearn(
    model: Any,
    path_or_repo: str | os.PathLike[str],
    *,
    n_features: int,
    name: str | None = None,
    version: int | str | None = None,
    sample: Any = None,
) -> Path:
    """Convert a fitted scikit-learn estimator or pipeline to ONNX with skl2onnx, verify it, and write it.

    Parameters
    ----------
    model : estimator
        A fitted scikit-learn estimator or Pipeline with numeric input.
    path_or_repo : path
        A file path (``model.onnx``), or, with ``name``, a model repository folder (created if missing).
    n_features : int
        Columns of the input: the ONNX input is ``input``, float32, shape ``(batch, n_features)``.
    name : str, optional
        Add the model to the repository ``path_or_repo`` under this name.
    version : int, optional
        The version to write (with ``name``); ``None`` = the next one.
    sample : array-like of shape (N, n_features), optional
        Rows to verify the export on; default 16 rows of standard normal noise (seed 0).

    Returns
    -------
    Path
        The written ONNX file.

    Raises
    ------
    NotFittedError
        ``model`` has not been fitted.
    InvalidInput
        ``model`` has no ``fit`` method, ``n_features`` is not a positive integer or does not match the model,
        skl2onnx cannot convert it, or the ONNX outputs differ from the model's predictions by more than 1e-4.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LinearRegression
    >>> reg = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [1.0, 2.0, 5.0])
    >>> repo = tempfile.mkdtemp()
    >>> export_sklearn(reg, repo, n_features=2, name="reg").relative_to(repo).as_posix()
    'reg/1/model.onnx'
    """
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError as SklearnNotFitted
    from sklearn.utils.validation import check_is_fitted

    validate_params({"model": model, "n_features": n_features},
                    {"model": [HasMethods("fit")], "n_features": [Interval(Integral, 1, None, closed="left")]})
    try:
        check_is_fitted(model)
    except SklearnNotFitted as exc:
        raise NotFittedError(
            f"{type(model).__name__} is not fitted; call fit(X, y) before exporting it to ONNX"
        ) from exc
    fitted_features = getattr(model, "n_features_in_", None)
    if fitted_features is not None and int(fitted_features) != int(n_features):
        raise InvalidInput(
            f"n_features={n_features} but {type(model).__name__} was fitted on {fitted_features} features; "
            f"pass n_features={fitted_features}"
        )
    dest = _destination(path_or_repo, name, version)

    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise InvalidInput(
            "export_sklearn needs skl2onnx, which is not installed; pip install 'aiforge[demo]' (or skl2onnx)"
        ) from exc

    final = _final_estimator(model)
    classifier = is_classifier(final)
    options = {id(final): {"zipmap": False}} if classifier else None
    try:
        onnx_model = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, int(n_features)]))],
            options=options,
            target_opset={"": OPSET, "ai.onnx.ml": 3},
        )
    except Exception as exc:  # skl2onnx raises RuntimeError/NotImplementedError/MissingShapeCalculator...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # skl2onnx may dump a whole tree here
        reason = reason if len(reason) <= 300 else reason[:300] + "..."
        raise InvalidInput(f"skl2onnx cannot convert {type(model).__name__} to ONNX: {reason}") from exc

    if sample is None:
        rows = np.random.default_rng(0).standard_normal((16, int(n_features))).astype(np.float32)
    else:
        rows = np.asarray(sample, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != n_features:
            raise InvalidInput(f"sample must have shape (N, {n_features}); got {rows.shape}")

    def check(path: Path) -> None:
        session = _session(path, source=f"the export of {type(model).__name__}")
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": rows}), strict=True))
        as_float64 = rows.astype(np.float64)
        if classifier:
            _compare("label", model.predict(as_float64), outputs["label"])
            if hasattr(model, "predict_proba") and "probabilities" in outputs:
                _compare("probabilities", model.predict_proba(as_float64), outputs["probabilities"])
        elif hasattr(model, "predict"):
            _compare("the prediction", model.predict(as_float64), next(iter(outputs.values())))
        elif hasattr(model, "transform"):
            _compare("the transform", model.transform(as_float64), next(iter(outputs.values())))

    return _write_verified(onnx_model.SerializeToString(), dest, check)


# -- PyTorch ----------------------------------------------------------------------------------------------------------


def export_torch(
    module: Any,
    example: Any,
    path_or_repo: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: int | str | None = None,
) -> Path:
    """Export a PyTorch module to ONNX (opset 17, dynamic batch dimension), verify it, and write it.

    The module is exported in eval mode (its training flag is restored afterwards) with the TorchScript exporter,
    which needs nothing beyond torch; the input is named ``input`` and the output ``output`` (``output_1``, ... for
    extra outputs of a module that returns a tuple).

    Parameters
    ----------
    module : torch.nn.Module
        The model; ``module(example)`` must return a tensor or a tuple of tensors.
    example : torch.Tensor of shape (N, ...)
        An example input; its first dimension is the batch and becomes dynamic in the ONNX model.
    path_or_repo : path
        A file path, or, with ``name``, a model repository folder (created if missing).
    name : str, optional
        Add the model to the repository ``path_or_repo`` under this name.
    version : int, optional
        The version to write (with ``name``); ``None`` = the next one.

    Returns
    -------
    Path
        The written ONNX file.

    Raises
    ------
    InvalidInput
        ``module`` or ``example`` has the wrong type, ``module(example)`` fails, the export fails, or ONNX Runtime's
        outputs on ``example`` (and on ``example`` stacked twice, which checks the dynamic batch) differ by more
        than 1e-4.

    Examples
    --------
    >>> import tempfile, torch  # doctest: +SKIP
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))  # doctest: +SKIP
    >>> export_torch(net, torch.randn(1, 4), tempfile.mkdtemp(), name="net")  # doctest: +SKIP
    PosixPath('/tmp/.../net/1/model.onnx')
    """
    try:
        import torch
    except ImportError as exc:
        raise InvalidInput("export_torch needs PyTorch, which is not installed; pip install torch") from exc

    validate_params({"module": module, "example": example}, {"module": [torch.nn.Module], "example": [torch.Tensor]})
    if example.ndim < 1 or example.shape[0] < 1:  # a shape, which no declared constraint describes
        raise InvalidInput(
            f"example must be a torch.Tensor of shape (batch, ...) with batch >= 1; got a tensor of shape "
            f"{tuple(example.shape)}"
        )
    dest = _destination(path_or_repo, name, version)
    was_training = module.training
    module.eval()
    try:
        doubled = torch.cat([example, example], dim=0)
        try:
            with torch.no_grad():
                raw = [module(example), module(doubled)]
        except Exception as exc:
            raise InvalidInput(
                f"{type(module).__name__}(example) failed on an example of shape {tuple(example.shape)}: {exc}"
            ) from exc
        expected = [_as_tuple(value) for value in raw]
        output_names = ["output"] + [f"output_{i}" for i in range(1, len(expected[0]))]
        dynamic = {name_: {0: "batch"} for name_ in ["input", *output_names]}
        with tempfile.TemporaryDirectory(prefix="aiforge-export-") as scratch:
            scratch_file = Path(scratch) / "model.onnx"
            try:
                with warnings.catch_warnings():
                    # the TorchScript exporter warns that it is legacy; it is the one that works without onnxscript
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        module,
                        (example,),
                        str(scratch_file),
                        input_names=["input"],
                        output_names=output_names,
                        dynamic_axes=dynamic,
                        opset_version=OPSET,
                        dynamo=False,
                    )
            except Exception as exc:
                raise InvalidInput(f"torch.onnx.export cannot export {type(module).__name__}: {exc}") from exc
            data = scratch_file.read_bytes()
    finally:
        module.train(was_training)

    def check(path: Path) -> None:
        session = _session(path, source=f"the export of {type(module).__name__}")
        for batch, want in zip((example, doubled), expected, strict=True):
            got = session.run(output_names, {"input": batch.detach().cpu().numpy()})
            for out_name, w, g in zip(output_names, want, got, strict=True):
                _compare(f"{out_name} (batch {batch.shape[0]})", w.detach().cpu().numpy(), g)

    return _write_verified(data, dest, check)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    import torch

    items = tuple(value) if isinstance(value, tuple | list) else (value,)
    if not items or not all(isinstance(item, torch.Tensor) for item in items):
        raise InvalidInput(f"the module must return a tensor or a tuple of tensors; got {type(value).__name__}")
    return items

