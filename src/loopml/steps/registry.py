"""Which step names exist and where their code lives.

Built-in steps are declared as data (name -> ``"module:attribute"``) and
imported only when a spec uses them, so scikit-learn, LightGBM or the Kaggle
client load only when their step runs. Third-party steps come from the entry
point group ``loopml.steps``; one that fails to import is reported by name and
does not stop the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from loopml.core.errors import PluginError
from loopml.steps.base import StepDefinition

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "loopml.steps"

BUILTIN_STEPS: Mapping[str, str] = {
    "load_data_from_file": "loopml.steps.data:load_data_from_file",
    "load_data_from_sql": "loopml.steps.data:load_data_from_sql",
    "load_data_from_kaggle": "loopml.steps.kaggle:load_data_from_kaggle",
    "load_data_from_feature_store": "loopml.steps.feature_store:load_data_from_feature_store",
    "validate_data": "loopml.steps.validate:validate_data",
    "train_model": "loopml.steps.train:train_model",
    "run_mlflow_project": "loopml.steps.project:run_mlflow_project",
    "evaluate_model": "loopml.steps.evaluate:evaluate_model",
    "validate_model": "loopml.steps.gate:validate_model",
    "register_model": "loopml.steps.register:register_model",
}


@dataclass
class StepRegistry:
    """Step names mapped to where they live; definitions are imported on first use."""

    locations: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    _loaded: dict[str, StepDefinition[Any]] = field(default_factory=dict)
    _broken: dict[str, str] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls, *, plugins: bool = True) -> StepRegistry:
        """The built-in steps plus, unless ``plugins`` is false, every installed plugin step."""
        registry = cls()
        for name, location in BUILTIN_STEPS.items():
            registry.add(name, location, origin="loopml")
        if plugins:
            registry.discover_plugins()
        return registry

    def add(self, name: str, location: str | StepDefinition[Any], origin: str = "local") -> None:
        """Register ``name``; ``location`` is ``"module:attribute"`` or a definition itself."""
        if isinstance(location, StepDefinition):
            self._loaded[name] = location
            self.locations[name] = f"{location.func.__module__}:{location.func.__qualname__}"
        else:
            self.locations[name] = location
            self._loaded.pop(name, None)
        self.origins[name] = origin
        self._broken.pop(name, None)

    def discover_plugins(self) -> None:
        """Record every ``loopml.steps`` entry point without importing it.

        A plugin may not shadow a built-in step: that would change what an
        existing spec means just by installing a package.
        """
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            dist = entry.dist.name if entry.dist is not None else "unknown distribution"
            if self.origins.get(entry.name) == "loopml":
                self._broken[entry.name] = (
                    f"plugin from {dist} tries to replace the built-in step {entry.name!r}; ignored"
                )
                log.warning(self._broken[entry.name])
                continue
            self.add(entry.name, entry.value, origin=dist)

    def names(self) -> list[str]:
        """Every registered step name."""
        return sorted(self.locations)

    def problems(self) -> dict[str, str]:
        """Steps that failed to load so far, with why."""
        return dict(self._broken)

    def get(self, name: str) -> StepDefinition[Any]:
        """The definition of ``name``, importing its module on first use."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self.locations:
            raise PluginError(f"no step named {name!r} is registered")
        location = self.locations[name]
        try:
            definition = _import_definition(location)
        except Exception as exc:
            origin = self.origins.get(name, "unknown")
            why = (
                f"step {name!r} from {origin} ({location}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            )
            self._broken[name] = why
            log.warning(why)
            raise PluginError(why) from exc
        self._loaded[name] = definition
        return definition

    def load_all(self) -> dict[str, StepDefinition[Any]]:
        """Import every step, collecting the broken ones instead of failing (for listings)."""
        loaded: dict[str, StepDefinition[Any]] = {}
        for name in self.names():
            try:
                loaded[name] = self.get(name)
            except PluginError:
                continue
        return loaded


def _import_definition(location: str) -> StepDefinition[Any]:
    module_name, _, attribute = location.partition(":")
    if not attribute:
        raise PluginError(f"{location!r} is not of the form 'package.module:attribute'")
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part)
    if not isinstance(target, StepDefinition):
        raise PluginError(
            f"{location} is a {type(target).__name__}, not a step; declare it with "
            "@loopml.steps.step(name, params=...)"
        )
    return target


def default_registry() -> StepRegistry:
    """A fresh registry with built-ins and installed plugins."""
    return StepRegistry.with_builtins()
