"""loopml: a closed MLOps loop for tabular ML.

The public surface is small on purpose: load and check a spec, run it, and the
error hierarchy a caller catches. Everything else lives in layered subpackages
(see ``docs/architecture.md``).
"""

from importlib.metadata import PackageNotFoundError, version

from loopml.core.errors import LoopmlError, SpecError, StepError
from loopml.core.settings import Settings

try:
    __version__ = version("loopml")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["LoopmlError", "Settings", "SpecError", "StepError", "__version__"]
