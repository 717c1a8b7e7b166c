"""``loopml serve``: put a registered model behind HTTP and keep it in step with its alias."""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated

import typer

from loopml.cli.output import say
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
    from loopml.cli.main import err, fail, settings
    from loopml.cli.quiet import quiet_mlflow
    from loopml.serving.model import ModelRef
    from loopml.serving.run import serve as run_server

    overrides: dict[str, object] = {"serve_model": model}
    if watch_interval is not None:
        overrides["serve_watch_interval_s"] = watch_interval
    if api_key:
        overrides["serve_api_keys"] = list(api_key)
    configured = settings().model_copy(update=overrides)
    quiet_mlflow()
    try:
        ref = ModelRef.parse(model)
        if workers > 1:
            # fail here, once, rather than in every worker; each worker process rebuilds
            # its settings from the environment
            ref.resolve(configured)
            os.environ["LOOPML_SERVE_MODEL"] = model
            if watch_interval is not None:
                os.environ["LOOPML_SERVE_WATCH_INTERVAL_S"] = str(watch_interval)
            if api_key:
                os.environ["LOOPML_SERVE_API_KEYS"] = ",".join(api_key)
        say(err, f"loading {model} ...")
        announce_when_ready(
            host, port, f"serving [bold]{model}[/] on http://{host}:{port} ({workers} worker(s))"
        )
        run_server(configured, model, host, port, workers)
    except LoopmlError as error:
        fail(error)


def announce_when_ready(host: str, port: int, message: str) -> threading.Thread:
    """Print ``message`` once the server answers ``/ping``: the port is bound, the model loaded.

    Saying "serving" before uvicorn has bound the port (or while the model
    still loads) sends a person's first request into a refused connection.
    """
    from loopml.cli.main import err

    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    url = f"http://{target}:{port}/ping"

    def wait() -> None:
        import httpx

        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    say(err, message)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=wait, name="loopml-serve-ready", daemon=True)
    thread.start()
    return thread
