"""Command: ``aiforge serve aps``, the APS front server (a handler in front of an inference server)."""

from __future__ import annotations

from typing import Annotated

import typer

from aiforge.cli._app import MetricsPublicOption, serve_app


@serve_app.command("aps")
def aps(
    handler: Annotated[
        str,
        typer.Argument(
            help="'default' (OIP or {\"instances\": rows} JSON), 'file.py', 'file.py:Class', 'pkg.module:Class', "
            "or 'transform:REF' (a BATCH transform artifact: path or snapshot ref) as the preprocessing.",
        ),
    ],
    predictor: Annotated[
        str,
        typer.Option(
            "--predictor", "-p",
            help="grpc://HOST:PORT of an inference server, or local:///MODEL_REPO to run the model in this process.",
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name in the repository.")],
    version: Annotated[str | None, typer.Option("--version", help="Model version [default: the newest].")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8000,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=0.001, help="Deadline of one request; past it the answer is 503.")
    ] = 5.0,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", min=1, help="Requests processed at once; more get 503 + Retry-After.")
    ] = 256,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", help="Environment variable holding the bearer token clients (and this server, "
                     "towards the inference server) must send."),
    ] = None,
    no_coalesce: Annotated[
        bool, typer.Option("--no-coalesce", help="With grpc://, send every request in its own call instead of "
                           "merging concurrent ones into one call.")
    ] = False,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="With local://, run each request alone (no dynamic batching).")
    ] = False,
    reuse_port: Annotated[
        bool, typer.Option("--reuse-port", help="Share --port with other APS processes (SO_REUSEPORT replicas).")
    ] = False,
    metrics_public: MetricsPublicOption = True,
    transform: Annotated[
        str | None,
        typer.Option("--transform", help="For a TransformHandler: read the BATCH transform here (a transform.json "
                     "path or a snapshot ref) instead of the handler's own source. Exported deployments use it to "
                     "ship transform.json beside the handler."),
    ] = None,
) -> None:
    """Run the APS server: HANDLER's pre/post-processing in front of an ONNX model, JSON in, JSON out.

    Example: aiforge serve aps handler.py:Churn --predictor grpc://127.0.0.1:8081 --model churn
    """
    from aiforge.serve.aps.handler import load_handler
    from aiforge.serve.aps.server import run_aps_server
    from aiforge.serve.deploy.settings import token_from_env
    from aiforge.server import READY_PREFIX

    token = token_from_env(token_env)
    typer.echo(f"APS for model {model!r} ({handler}) on http://{host}:{port}/predict -> {predictor}", err=True)
    # with --transform, the handler is loaded here to read its transform from there
    target = load_handler(handler, transform=transform) if transform is not None else handler
    run_aps_server(target, predictor, model=model, version=version, host=host, port=port, timeout_s=timeout_s,
                   max_in_flight=max_in_flight, token=token, batching=not no_batching, coalesce=not no_coalesce,
                   reuse_port=reuse_port, metrics_public=metrics_public,
                   on_started=lambda: typer.echo(f"{READY_PREFIX}APS on http://{host}:{port}/predict", err=True))

