"""A served loopml pipeline as one ONNX graph: samplers dropped, loopml's steps converted.

A loopml model is an imbalanced-learn pipeline (``loopml.automl``): a
``ColumnTransformer`` on the raw columns, training-only samplers (SMOTE,
outlier removal), optional scaling/PCA/selection, the estimator. ONNX has no
sampler and skl2onnx cannot read an imblearn ``Pipeline``, so the graph is
built from a flat scikit-learn pipeline of the steps that run at predict:

- samplers are dropped (at predict they pass rows through unchanged);
- ``FunctionTransformer(as_float)`` is dropped: the graph's numeric inputs are floats already;
- a categorical ``SimpleImputer`` gets ``""`` as its missing value (ONNX strings have no NaN;
  the scorers send a missing category as ``""``);
- ``TrigonometryFeatures`` and ``RemoveMulticollinearity`` get converters here;
- ``LabelledClassifier`` is unwrapped: the graph's label is a class index and the graph's
  metadata holds the classes (``loopml.classes``), which every scorer maps back;
- fitted feature selectors become the columns they keep (``KeepColumns``);
- ``CalibratedSVC`` becomes the ``CalibratedClassifierCV`` it holds;
- LightGBM and XGBoost get onnxmltools' converters.

Anything else without a converter is refused with the step's name and why
(docs/onnx.md lists them). This module never imports ``loopml.automl``:
loopml's classes are recognised by name on the unpickled objects, so the
serving layer can export without the training world.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.export.errors import ExportError, missing_extra

INPUTS_KEY = "loopml.inputs"
CLASSES_KEY = "loopml.classes"
LABEL_INDEX_KEY = "loopml.label_index"
KIND_KEY = "loopml.kind"
_LOOPML = "loopml.automl"


@dataclass
class OnnxInput:
    """One graph input: the raw columns it carries (in order) and their element type."""

    name: str
    columns: list[str]
    type: str  # "float" or "string"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": self.columns, "type": self.type}


@dataclass
class Converted:
    """An ONNX model and what a scorer needs to feed it and read its answer."""

    model: Any  # onnx.ModelProto
    inputs: list[OnnxInput]
    kind: str  # "classifier", "regressor", or "values" (a module's first output column)
    classes: list[Any] | None = None
    label_index: bool = False
    """``True`` when the graph's label output is an index into ``classes``."""
    dropped: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return bytes(self.model.SerializeToString())


def convert_pipeline(pipeline: Any, *, name: str = "loopml") -> Converted:
    """``pipeline`` (a fitted loopml model) as an ONNX graph; :class:`ExportError` if it cannot."""
    try:
        from sklearn.pipeline import Pipeline
    except ImportError as exc:  # pragma: no cover - scikit-learn is a core dependency
        raise missing_extra(exc) from exc
    _register_converters()
    dropped: list[str] = []
    steps = _flatten(pipeline, "", dropped)
    if not steps:
        raise ExportError("the model has no estimator to export")
    final_name, final = steps[-1]
    label_index = False
    classes: list[Any] | None = None
    if _is(final, "LabelledClassifier"):
        classes = np.asarray(final.classes_).tolist()
        final = final.estimator_
        if not _has_proba(final):
            raise ExportError(
                f"step {final_name!r} ({type(final).__name__}) has no predict_proba: loopml "
                "squashes its decision function into probabilities, which no ONNX converter "
                "reproduces (docs/onnx.md)"
            )
        label_index = True
    elif _is(final, "CalibratedSVC"):
        classes = np.asarray(final.classes_).tolist()
        final = final.model_
    kind = "classifier" if hasattr(final, "predict_proba") else "regressor"
    if kind == "classifier" and classes is None:
        classes = np.asarray(final.classes_).tolist()
    _refuse_unconvertible(final, final_name)
    for path, step in steps[:-1]:
        for where, leaf in _leaves(path, step):
            _refuse_unregistered(leaf, where)
    steps[-1] = (final_name, final)
    inputs, initial_types = _inputs(steps)
    flat = Pipeline(steps) if len(steps) > 1 else final
    options = {id(final): {"zipmap": False}} if kind == "classifier" else None
    model = _convert(flat, initial_types, options, name)
    converted = Converted(model, inputs, kind, classes, label_index, dropped)
    stamp(converted)
    return converted


def read_metadata(props: dict[str, str]) -> tuple[list[OnnxInput], list[Any] | None, bool]:
    """The inputs, classes and label-index flag stamped into a graph by :func:`convert_pipeline`."""
    inputs = [OnnxInput(**item) for item in json.loads(props[INPUTS_KEY])]
    classes = json.loads(props[CLASSES_KEY]) if CLASSES_KEY in props else None
    return inputs, classes, props.get(LABEL_INDEX_KEY) == "true"


# -- flattening ----------------------------------------------------------------------------------


def _flatten(estimator: Any, prefix: str, dropped: list[str]) -> list[tuple[str, Any]]:
    """The steps that run at predict, nested pipelines opened, each made convertible."""
    steps = getattr(estimator, "steps", None)
    if steps is None:
        return [(prefix or type(estimator).__name__, _convertible(estimator, prefix))]
    flat: list[tuple[str, Any]] = []
    for step_name, step in steps:
        path = f"{prefix}{step_name}"
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if hasattr(step, "fit_resample") and not hasattr(step, "transform"):
            dropped.append(path)  # a sampler: it only changes the rows while fitting
            continue
        if _is_as_float(step):
            dropped.append(path)
            continue
        if hasattr(step, "steps"):
            flat.extend(_flatten(step, f"{path}.", dropped))
        else:
            flat.append((path.replace(".", "__"), _convertible(step, path)))
    return flat


def _convertible(step: Any, path: str) -> Any:
    """``step`` itself, or a copy an ONNX converter can read."""
    if _is(step, "DateFeatures"):
        raise ExportError(
            f"step {path!r} (DateFeatures) parses dates from text, which ONNX cannot do; "
            "export a model trained without date columns (docs/onnx.md)"
        )
    if _is(step, "BlendedClassifier", "BlendedRegressor", "StackedClassifier", "StackedRegressor"):
        raise ExportError(
            f"step {path!r} ({type(step).__name__}) is a loopml ensemble, which has no ONNX "
            "converter yet; export one of its members' models instead (docs/onnx.md)"
        )
    if type(step).__name__ == "FunctionTransformer":
        raise ExportError(
            f"step {path!r} is a FunctionTransformer of {getattr(step.func, '__name__', '?')}, "
            "arbitrary Python that ONNX cannot express (docs/onnx.md)"
        )
    if type(step).__name__ == "ColumnTransformer":
        return _columns(step, path)
    if hasattr(step, "get_support") and hasattr(step, "transform"):
        from loopml.export.custom import KeepColumns

        return KeepColumns.of(step)  # a fitted feature selector keeps fixed columns
    if _is(step, "TrigonometryFeatures", "RemoveMulticollinearity"):
        from loopml.export.custom import register_loopml

        register_loopml(type(step))
    return step


def _columns(columns: Any, path: str) -> Any:
    """A copy of a fitted ColumnTransformer whose branches ONNX can run."""
    from sklearn.pipeline import Pipeline

    copied = copy.deepcopy(columns)
    branches = []
    for name, transformer, selected in copied.transformers_:
        if isinstance(transformer, str):
            branches.append((name, transformer, selected))
            continue
        steps = transformer.steps if hasattr(transformer, "steps") else [(name, transformer)]
        kept = []
        for step_name, step in steps:
            where = f"{path}.{name}.{step_name}"
            if _is_as_float(step):
                continue
            if type(step).__name__ == "SimpleImputer" and _is_text(step):
                step = copy.deepcopy(step)
                step.missing_values = ""
            kept.append((step_name, _convertible(step, where)))
        if not kept:
            branches.append((name, "passthrough", selected))
        elif len(kept) == 1:
            branches.append((name, kept[0][1], selected))
        else:
            branches.append((name, Pipeline(kept), selected))
    copied.transformers_ = branches
    return copied


def _is_text(imputer: Any) -> bool:
    stats = getattr(imputer, "statistics_", None)
    return stats is not None and np.asarray(stats).dtype.kind in "OUS"


def _is_as_float(step: Any) -> bool:
    return (
        type(step).__name__ == "FunctionTransformer"
        and getattr(step.func, "__name__", "") == "as_float"
        and getattr(step.func, "__module__", "").startswith(_LOOPML)
    )


def _is(step: Any, *names: str) -> bool:
    cls = type(step)
    return cls.__name__ in names and cls.__module__.startswith(_LOOPML)


def _has_proba(estimator: Any) -> bool:
    try:
        return hasattr(estimator, "predict_proba")
    except AttributeError:  # pragma: no cover - hasattr swallows it already
        return False


def _refuse_unconvertible(final: Any, path: str) -> None:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    cls = type(final)
    if cls.__module__.startswith(_LOOPML):
        raise ExportError(f"step {path!r} ({cls.__name__}) has no ONNX converter (docs/onnx.md)")
    if cls not in sklearn_operator_name_map:
        raise ExportError(
            f"step {path!r} ({cls.__name__}) has no ONNX converter in skl2onnx or onnxmltools "
            "(docs/onnx.md)"
        )


def _refuse_unregistered(step: Any, path: str) -> None:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    if type(step) not in sklearn_operator_name_map:
        raise ExportError(
            f"step {path!r} ({type(step).__name__}) has no ONNX converter in skl2onnx or "
            "onnxmltools (docs/onnx.md)"
        )


def _leaves(path: str, step: Any) -> list[tuple[str, Any]]:
    """The estimators a step runs, each with its path (branches and pipelines opened).

    Checked before conversion, so a step without a converter is refused by its
    name rather than by skl2onnx's paragraph about shape calculators.
    """
    if type(step).__name__ == "ColumnTransformer":
        found: list[tuple[str, Any]] = []
        for name, transformer, _ in step.transformers_:
            if not isinstance(transformer, str):
                found.extend(_leaves(f"{path}.{name}", transformer))
        return found
    steps = getattr(step, "steps", None)
    if steps is not None:
        return [
            leaf
            for name, inner in steps
            if inner is not None and not isinstance(inner, str)  # "passthrough"
            for leaf in _leaves(f"{path}.{name}", inner)
        ]
    return [(path, step)]


# -- inputs --------------------------------------------------------------------------------------


def _inputs(steps: list[tuple[str, Any]]) -> tuple[list[OnnxInput], list[tuple[str, Any]]]:
    """One input per raw column when a ColumnTransformer reads them by name, else one matrix."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    first = steps[0][1]
    inputs: list[OnnxInput] = []
    if type(first).__name__ == "ColumnTransformer":
        for _, transformer, selected in first.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            text = _reads_text(transformer)
            for column in selected:
                if not isinstance(column, str):
                    raise ExportError(
                        f"the column transformer selects column {column!r} by position; "
                        "ONNX inputs are named after the columns"
                    )
                if any(column in item.columns for item in inputs):
                    continue
                inputs.append(OnnxInput(column, [column], "string" if text else "float"))
    else:
        names = getattr(first, "feature_names_in_", None)
        if names is None:
            count = int(first.n_features_in_)
            names = [f"x{i}" for i in range(count)]
        inputs.append(OnnxInput("input", [str(n) for n in names], "float"))
    types = [
        (
            item.name,
            StringTensorType([None, 1])
            if item.type == "string"
            else FloatTensorType([None, len(item.columns)]),
        )
        for item in inputs
    ]
    return inputs, types


def _reads_text(transformer: Any) -> bool:
    """Whether a branch's first step was fitted on text (an imputer or encoder of categories)."""
    first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
    if isinstance(first, str):
        return False
    if type(first).__name__ == "SimpleImputer":
        return _is_text(first)
    categories = getattr(first, "categories_", None)
    if categories is not None:
        kinds = {np.asarray(c).dtype.kind for c in categories}
        if kinds - set("OUS"):
            raise ExportError(
                f"{type(first).__name__} was fitted on numbers as categories; ONNX exports "
                "need text categories (list such columns in numeric_features, or cast them)"
            )
        return True
    return False


# -- conversion ----------------------------------------------------------------------------------


def _convert(model: Any, initial_types: Any, options: Any, name: str) -> Any:
    from skl2onnx import convert_sklearn

    try:
        return convert_sklearn(
            model,
            name=name,
            initial_types=initial_types,
            options=options,
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, ...
        raise ExportError(f"the ONNX conversion failed: {type(exc).__name__}: {exc}") from exc


def stamp(converted: Converted) -> None:
    """Write what a scorer needs (inputs, classes) into the graph's metadata.

    The opset imports are sorted too: skl2onnx lists them in set order, which
    changes with each process's hash seed, and an export's bytes (its sha256
    tag, its file name) must depend only on the model.
    """
    imports = sorted((entry.domain, entry.version) for entry in converted.model.opset_import)
    del converted.model.opset_import[:]
    for domain, version in imports:
        entry = converted.model.opset_import.add()
        entry.domain, entry.version = domain, version
    props = {
        INPUTS_KEY: json.dumps([item.as_dict() for item in converted.inputs]),
        KIND_KEY: converted.kind,
        LABEL_INDEX_KEY: "true" if converted.label_index else "false",
    }
    if converted.classes is not None:
        props[CLASSES_KEY] = json.dumps(_plain(converted.classes))
    for key, value in props.items():
        entry = converted.model.metadata_props.add()
        entry.key, entry.value = key, value


def _plain(values: list[Any]) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


_REGISTERED = False


def _register_converters() -> None:
    """LightGBM/XGBoost converters (onnxmltools) and loopml's own, registered once."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        raise missing_extra(exc) from exc
    from loopml.export.custom import register_all

    register_all()
    _REGISTERED = True
