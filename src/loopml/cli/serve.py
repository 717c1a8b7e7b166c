"""``loopml serve``: put a registered model behind HTTP and keep it in step with its alias."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from loopml.core.errors import LoopmlError


def serve(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="NAME@alias (follows the alias), NAME/version, or a models:/ URI.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    watch_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between checks of the alias (LOOPML_SERVE_WATCH_INTERVAL_S)."),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(help="Require Authorization: Bearer KEY (repeatable; LOOPML_SERVE_API_KEYS)."),
    ] = None,
) -> None:
    """Serve a registered model: /predict, MLflow's /invocations and Open Inference /v2."""
    from loopml.cli.common import err, fail, settings
    from loopml.serving.model import ModelRef
    from loopml.serving.run import serve as run_server

    overrides: dict[str, object] = {"serve_model": model}
    if watch_interval is not None:
        overrides["serve_watch_interval_s"] = watch_interval
    if api_key:
        overrides["serve_api_keys"] = list(api_key)
    configured = settings().model_copy(update=overrides)
    try:
        ref = ModelRef.parse(model)
        if workers > 1:
            # fail here, once, rather than in every worker (unknown or untrusted version);
            # each worker process rebuilds its settings from the environment and checks again
            from loopml.lifecycle import check_trusted

            check_trusted(configured, ref)
            os.environ["LOOPML_SERVE_MODEL"] = model
            if watch_interval is not None:
                os.environ["LOOPML_SERVE_WATCH_INTERVAL_S"] = str(watch_interval)
            if api_key:
                os.environ["LOOPML_SERVE_API_KEYS"] = ",".join(api_key)
        err.print(f"serving [bold]{model}[/] on http://{host}:{port} ({workers} worker(s))")
        run_server(configured, model, host, port, workers)
    except LoopmlError as error:
        fail(error)
