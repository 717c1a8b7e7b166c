"""Pipeline steps: one module per family, each step a typed function registered by name.

Third-party packages add steps through the entry point group ``loopml.steps``
(``name = "package.module:step_object"``) without touching the engine.
"""

from loopml.steps.base import StepDefinition, StepParams, step
from loopml.steps.registry import StepRegistry, default_registry

__all__ = ["StepDefinition", "StepParams", "StepRegistry", "default_registry", "step"]
