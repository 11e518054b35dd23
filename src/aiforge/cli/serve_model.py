"""Command ``aiforge serve model``: the ONNX inference server (Open Inference Protocol v2, REST + gRPC)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiforge.cli._app import MetricsPublicOption, serve_app

__all__ = ["serve_model"]


@serve_app.command("model")
def serve_model(
    model_repo: Annotated[
        Path, typer.Argument(help="Model repository: MODEL_REPO/<name>/<version>/model.onnx (+ optional config.yaml).")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="REST port.")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", min=0, max=65535, help="gRPC port (0: no gRPC).")] = 8081,
    max_batch_size: Annotated[
        int | None,
        typer.Option("--max-batch-size", min=0, help="Most rows per batched run, for every model [config: 32]."),
    ] = None,
    max_queue_delay_ms: Annotated[
        float | None,
        typer.Option("--max-queue-delay-ms", min=0.0, help="Wait this long for more requests to batch [config: 1]."),
    ] = None,
    max_queue_size: Annotated[
        int | None,
        typer.Option("--max-queue-size", min=1, help="Requests that may wait per model; more get 503 [config: 256]."),
    ] = None,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Run every request alone.")] = False,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="ONNX Runtime intra-op threads per model [config: 1].")
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", metavar="NAME",
                     help="Require 'Authorization: Bearer <token>', the token read from environment variable NAME."),
    ] = None,
    reuse_port: Annotated[
        bool, typer.Option("--reuse-port", help="Share the ports with other server processes (SO_REUSEPORT).")
    ] = False,
    metrics_public: MetricsPublicOption = True,
) -> None:
    """Serve the ONNX models of MODEL_REPO over REST and gRPC, with dynamic batching, until Ctrl-C or SIGTERM.

    Example: aiforge serve model ./models --port 8080 --max-batch-size 64
    """

    from aiforge.serve.deploy.settings import token_from_env

    token = token_from_env(token_env)
    from aiforge.serve.inference.repository import ModelRepository
    from aiforge.serve.inference.server import run_inference_server

    overrides = {"max_batch_size": max_batch_size, "max_queue_delay_ms": max_queue_delay_ms,
                 "max_queue_size": max_queue_size, "intra_op_threads": threads}
    repository = ModelRepository.load(model_repo, overrides=overrides)

    def started() -> None:
        models = ", ".join(f"{name} (v{', v'.join(repository.versions(name))})" for name in repository.names())
        from aiforge.server import READY_PREFIX

        typer.echo(f"{READY_PREFIX}serving {models}")
        typer.echo(f"  REST  http://{host}:{port}/v2  (docs: http://{host}:{port}/docs)")
        if grpc_port:
            typer.echo(f"  gRPC  {host}:{grpc_port}")
        auth = ("on" + ("" if metrics_public else ", /metrics too")) if token else "off"
        typer.echo(f"  batching {'off' if no_batching else 'on'}; auth {auth}; Ctrl-C to stop")

    run_inference_server(repository, host=host, port=port, grpc_port=grpc_port or None, token=token,
                         batching=not no_batching, reuse_port=reuse_port, on_started=started,
                         metrics_public=metrics_public)
