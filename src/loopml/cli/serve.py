"""``loopml serve``: put a registered model behind HTTP and keep it in step with its alias."""

from __future__ import annotations

import os
import threading
from typing import Annotated

import typer

from loopml.cli.output import say
from loopml.core.errors import ConfigError, LoopmlError


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
    runtime: Annotated[
        str | None,
        typer.Option(
            help=(
                "pyfunc (the pipeline) or onnx (its parity-checked ONNX export, onnxruntime; "
                "needs the onnx extra) (LOOPML_SERVE_RUNTIME)."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a registered model: /predict, MLflow's /invocations and Open Inference /v2."""
    from loopml.cli.common import err, fail, settings
    from loopml.cli.quiet import quiet_mlflow
    from loopml.serving.model import ModelRef
    from loopml.serving.run import serve as run_server

    overrides: dict[str, object] = {"serve_model": model}
    if watch_interval is not None:
        overrides["serve_watch_interval_s"] = watch_interval
    if api_key:
        overrides["serve_api_keys"] = list(api_key)
    if runtime is not None:
        if runtime not in ("pyfunc", "onnx"):
            fail(ConfigError(f"--runtime {runtime!r}: use pyfunc or onnx"))
        overrides["serve_runtime"] = runtime
    configured = settings().model_copy(update=overrides)
    quiet_mlflow()
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
            if runtime is not None:
                os.environ["LOOPML_SERVE_RUNTIME"] = runtime
        check_port_free(host, port)
        say(err, f"loading {model} ...")
        stop = announce_when_ready(
            host, port, f"serving [bold]{model}[/] on http://{host}:{port} ({workers} worker(s))"
        )
        try:
            run_server(configured, model, host, port, workers)
        finally:
            stop.set()
    except LoopmlError as error:
        fail(error)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, before loading the model for it."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                "another server uses it: stop it or pass another --port"
            ) from None


def announce_when_ready(host: str, port: int, message: str) -> threading.Event:
    """Print ``message`` once the server answers ``/ping``: the port is bound, the model loaded.

    Saying "serving" before uvicorn has bound the port (or while the model
    still loads) sends a person's first request into a refused connection.
    Setting the returned event stops waiting (the server failed to start).
    """
    from loopml.cli.common import err

    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    url = f"http://{target}:{port}/ping"
    stop = threading.Event()

    def wait() -> None:
        import httpx

        while not stop.is_set():
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    if not stop.is_set():
                        say(err, message)
                    return
            except httpx.HTTPError:
                pass
            stop.wait(0.2)

    threading.Thread(target=wait, name="loopml-serve-ready", daemon=True).start()
    return stop
