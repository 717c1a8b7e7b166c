"""Running the server under uvicorn, in one process or several workers.

With several workers uvicorn imports the app by name in each process, so the
app comes from :func:`app_from_settings`, which reads the same ``LOOPML_*``
settings the CLI exported (``LOOPML_SERVE_MODEL`` and friends).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from loopml.core.errors import ConfigError
from loopml.core.settings import Settings, get_settings
from loopml.serving.app import create_app
from loopml.serving.state import ServingState

FACTORY = "loopml.serving.run:app_from_settings"


def build_app(settings: Settings, model: str | None = None) -> FastAPI:
    """Load the model named by ``model`` (or ``settings.serve_model``) and wrap it in the app."""
    target = model or settings.serve_model
    if not target:
        raise ConfigError("nothing to serve: pass --model NAME@champion (or LOOPML_SERVE_MODEL)")
    return create_app(ServingState.load(settings, target))


def app_from_settings() -> FastAPI:
    """The uvicorn factory for multi-worker serving."""
    return build_app(get_settings())


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """Fast defaults: uvloop and httptools when installed, no per-request access log."""
    import importlib.util

    options: dict[str, Any] = {"host": host, "port": port, "access_log": False}
    if importlib.util.find_spec("uvloop") is not None:
        options["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        options["http"] = "httptools"
    return options


def serve(settings: Settings, model: str, host: str, port: int, workers: int = 1) -> None:
    """Block serving ``model`` until interrupted."""
    import uvicorn

    options = uvicorn_options(host, port)
    if workers > 1:
        uvicorn.run(FACTORY, factory=True, workers=workers, log_level="warning", **options)
        return
    uvicorn.run(build_app(settings, model), log_level="warning", **options)
