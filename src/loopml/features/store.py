"""Opening a Feast repo in-process (the Feast CLI takes ~15 s to start; the SDK does not).

``feast apply`` imports every ``.py`` file in the repo folder: keep data generators and
other scripts outside it (the example keeps its generator one folder up).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from loopml.core.errors import ConfigError, DataError, InputFileError

CONFIG_FILE = "feature_store.yaml"
INSTALL_HINT = (
    "the feature store needs Feast: pip install 'loopml[feast]' (Feast 0.67 needs "
    "pandas<3; use the environment of scripts/install-feast.sh)"
)


def require_feast() -> Any:
    """The ``feast`` module, or a ConfigError saying how to install it."""
    try:
        import feast
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from exc
    return feast


def repo_dir(repo: str | Path, base_dir: Path | None = None) -> Path:
    """The repo folder of ``repo`` (a folder or its ``feature_store.yaml``), made absolute."""
    path = Path(repo).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    path = path.resolve()
    if path.is_file() and path.name.endswith((".yaml", ".yml")):
        path = path.parent
    if not (path / CONFIG_FILE).is_file():  # a wrong --repo or setting: bad input, exit code 2
        raise InputFileError(
            f"{repo!s} is not a Feast repo: {path / CONFIG_FILE} does not exist; give the "
            f"folder holding {CONFIG_FILE} (or the file itself)"
        )
    return path


def open_store(repo: str | Path, base_dir: Path | None = None) -> Any:
    """A ``feast.FeatureStore`` of ``repo``; one per repo folder and process."""
    return _open(str(repo_dir(repo, base_dir)))


@lru_cache(maxsize=16)
def _open(path: str) -> Any:
    feast = require_feast()
    try:
        return feast.FeatureStore(repo_path=path)
    except Exception as exc:  # Feast raises its own zoo for a bad yaml
        raise DataError(f"cannot open the Feast repo {path}: {type(exc).__name__}: {exc}") from exc


def apply_repo(repo: str | Path, base_dir: Path | None = None) -> list[str]:
    """Register the repo's definitions in its Feast registry (``feast apply``, in-process).

    Like ``feast apply`` this imports every ``.py`` file of the repo folder (not its
    sub-folders starting with ``.`` or named ``data``), but by file path, without
    changing the working directory or ``sys.path`` (Feast's own parser needs both).
    Returns the names of the objects applied.
    """
    feast = require_feast()
    store = open_store(repo, base_dir)
    root = Path(store.repo_path)
    kinds = (
        feast.Entity,
        feast.FeatureView,
        feast.OnDemandFeatureView,
        feast.StreamFeatureView,
        feast.FeatureService,
        feast.data_source.DataSource,
    )
    found: dict[int, Any] = {}
    for number, path in enumerate(sorted(root.rglob("*.py"))):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") or part in {"data", "__pycache__"} for part in relative):
            continue
        for value in vars(_import_file(path, f"loopml_feast_repo_{number}")).values():
            if isinstance(value, kinds):
                found.setdefault(id(value), value)
    objects = list(found.values())
    if not objects:
        raise DataError(f"the Feast repo {root} defines no entities, views or services")
    store.apply(objects)
    return sorted(str(getattr(item, "name", item)) for item in objects)


def _import_file(path: Path, name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DataError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise DataError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def resolve_features(store: Any, features: list[str], service: str | None) -> tuple[list[str], Any]:
    """Feature refs ``view:feature`` and what to hand Feast (the service object or the refs).

    Unknown views or features are a DataError listing what the repo has.
    """
    if service is not None:
        try:
            found = store.get_feature_service(service)
        except Exception as exc:
            names = sorted(s.name for s in store.list_feature_services())
            raise DataError(
                f"feature service {service!r} is not in the Feast repo {store.repo_path}; it has "
                f"{', '.join(names) or 'none'} (did you apply it?)"
            ) from exc
        refs = [
            f"{projection.name_to_use()}:{feature.name}"
            for projection in found.feature_view_projections
            for feature in projection.features
        ]
        return refs, found
    views = {view.name: view for view in store.list_feature_views()}
    for ref in features:
        view_name, _, feature = ref.partition(":")
        view = views.get(view_name)
        if view is None:
            raise DataError(
                f"feature {ref!r}: no feature view {view_name!r} in {store.repo_path}; it has "
                f"{', '.join(sorted(views)) or 'none'} (did you apply it?)"
            )
        names = [field.name for field in view.features]
        if feature not in names:
            raise DataError(
                f"feature {ref!r}: view {view_name!r} has no feature {feature!r}; it has "
                f"{', '.join(names)}"
            )
    return list(features), list(features)


def join_keys(store: Any, refs: list[str]) -> list[str]:
    """The join keys of every entity behind ``refs``' feature views, in first-seen order."""
    keys: dict[str, None] = {}
    views = {view.name: view for view in store.list_feature_views()}
    for ref in refs:
        view = views[ref.split(":", 1)[0]]
        for column in view.entity_columns:
            keys[column.name] = None
    return list(keys)
