"""Commands ``aiforge serve up`` (both servers on this machine) and ``aiforge serve export`` (Kubernetes/KServe)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiforge.cli._app import serve_app, workspace_of

if TYPE_CHECKING:
    from aiforge.serve.deploy.settings import ServeSettings
    from aiforge.serve.deploy.stack import Stack

__all__ = ["serve_export", "serve_up"]

ModelArg = Annotated[
    str | None,
    typer.Argument(help="Model name in the repository (MODEL_REPO/<name>/<version>/model.onnx), or NAME@ALIAS / "
                   "NAME@vN from the workspace's registry (`aiforge models list`)."),
]
RepoOption = Annotated[
    Path | None, typer.Option("--model-repo", help="The model repository [default: ./models, or the config's].")
]
VersionOption = Annotated[str | None, typer.Option("--version", help="Model version the APS calls [default: newest].")]
HandlerOption = Annotated[
    str | None,
    typer.Option("--handler", help="APS handler: 'file.py:Class', 'pkg.module:Class', 'transform:REF' "
                 "[default: the default handler, {\"instances\": rows} JSON]."),
]
ReplicasOption = Annotated[int | None, typer.Option("--replicas", min=1, help="Processes (pods) of each server [1].")]
CpusOption = Annotated[
    float | None, typer.Option("--cpus", min=0.001, help="CPUs per inference replica = ONNX Runtime threads [1].")
]
PortOption = Annotated[int | None, typer.Option("--port", min=1, max=65535, help="APS port [8000].")]
HttpPortOption = Annotated[
    int | None, typer.Option("--http-port", min=1, max=65535, help="Inference server REST port [8080].")
]
GrpcPortOption = Annotated[
    int | None, typer.Option("--grpc-port", min=1, max=65535, help="Inference server gRPC port [8081].")
]
BatchOption = Annotated[
    int | None, typer.Option("--max-batch-size", min=0, help="Dynamic batching: most rows per run [model config].")
]
DelayOption = Annotated[
    float | None, typer.Option("--max-queue-delay-ms", min=0.0, help="Dynamic batching: wait for more [model config].")
]
TokenEnvOption = Annotated[
    str | None,
    typer.Option("--token-env", metavar="NAME", help="Require a bearer token, read from environment variable NAME."),
]
MetricsPublicOption = Annotated[
    bool | None,
    typer.Option("--metrics-public/--no-metrics-public",
                 help="Whether GET /metrics answers without the bearer token (for Prometheus scrapers without one; "
                 "the metrics hold counts, latencies and model names, no request data) [public]."),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Settings YAML (the keys of ServeSettings); options override it.")
]


def _from_registry(
    ctx: typer.Context, model: str | None, model_repo: Path | None, version: str | None
) -> tuple[str | None, Path | None, str | None]:
    """Resolve ``NAME@ALIAS`` or ``NAME@vN``: through the workspace's registry, or as a version of ``--model-repo``."""
    if model is None or "@" not in model:
        return model, model_repo, version
    from aiforge.workspace import Registry
    from aiforge.workspace.registry import parse_model_ref

    name, which = parse_model_ref(model)
    if version is not None:
        raise typer.BadParameter(f"{model!r} names its version already; drop --version", param_hint="'--version'")
    if model_repo is not None:  # an explicit repository is read as it is: a version, but no registry alias
        number = which[1:] if which and which[:1] == "v" else which
        if not (number or "").isdigit():
            raise typer.BadParameter(
                f"aliases such as {which!r} live in the workspace's registry; drop --model-repo, or name a version "
                f"('{name}@v1')", param_hint="'MODEL'",
            )
        return name, model_repo, number
    registry = Registry(workspace_of(ctx))
    resolved = registry.get(model)
    typer.echo(f"{model} is {resolved.ref} ({resolved.path})", err=True)
    return name, registry.store.root, str(resolved.version)


def _settings(config: Path | None, **options: Any) -> ServeSettings:
    from aiforge.serve.deploy.settings import ServeSettings

    given = {key: value for key, value in options.items() if value is not None}
    if config is not None:
        return ServeSettings.from_yaml(config, **given)
    given.setdefault("model_repo", Path("models"))
    return ServeSettings(**given)


@serve_app.command("up")
def serve_up(
    ctx: typer.Context,
    model: ModelArg = None,
    model_repo: RepoOption = None,
    version: VersionOption = None,
    handler: HandlerOption = None,
    replicas: ReplicasOption = None,
    cpus: CpusOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on [127.0.0.1].")] = None,
    port: PortOption = None,
    http_port: HttpPortOption = None,
    grpc_port: GrpcPortOption = None,
    max_batch_size: BatchOption = None,
    max_queue_delay_ms: DelayOption = None,
    token_env: TokenEnvOption = None,
    metrics_public: MetricsPublicOption = None,
    max_restarts: Annotated[
        int | None,
        typer.Option("--max-restarts", min=0, help="Restart a crashed server process at most N times within "
                     "--restart-window-s; one crash more stops everything (0: never restart) [5]."),
    ] = None,
    restart_window_s: Annotated[
        float | None,
        typer.Option("--restart-window-s", min=0.001, help="Seconds over which a process's crashes are counted [60]."),
    ] = None,
    restart_backoff_s: Annotated[
        float | None,
        typer.Option("--restart-backoff-s", min=0.0, help="Wait before the first restart; doubles with each crash "
                     "in the window, at most 30 s [0.5]."),
    ] = None,
    config: ConfigOption = None,
    wait_s: Annotated[
        float, typer.Option("--wait-s", min=0.1, help="How long the servers may take to start (and to start again "
                            "after a crash).")
    ] = 60.0,
) -> None:
    """Serve MODEL on this machine: the inference server and the APS server, until Ctrl-C.

    --replicas N starts N processes of each server sharing the ports; --cpus C gives each inference replica C
    ONNX Runtime threads. Prints the URLs and a curl example; Ctrl-C or SIGTERM stops everything gracefully.

    A server process that crashes is restarted (after 0.5 s, then 1 s, 2 s... at most 30 s), and each crash and
    restart is reported on stderr; meanwhile the APS answers 503 with Retry-After. More than --max-restarts crashes
    of one process within --restart-window-s stop everything with an error (exit code 1).

    MODEL may be NAME@ALIAS or NAME@vN: without --model-repo it is looked up in the workspace's model registry.

    Example: aiforge serve up churn --model-repo ./models --handler handler.py:Churn --replicas 2

    Example: aiforge serve up digits@production
    """
    from aiforge.serve.deploy.stack import default_log_dir
    from aiforge.serve.deploy.supervise import supervise

    model, model_repo, version = _from_registry(ctx, model, model_repo, version)
    settings = _settings(
        config, model=model, model_repo=model_repo, version=version, handler=handler, replicas=replicas, cpus=cpus,
        host=host, aps_port=port, http_port=http_port, grpc_port=grpc_port, max_batch_size=max_batch_size,
        max_queue_delay_ms=max_queue_delay_ms, token_env=token_env, metrics_public=metrics_public,
        max_restarts=max_restarts, restart_window_s=restart_window_s, restart_backoff_s=restart_backoff_s,
    )

    def ready(stack: Stack) -> None:
        each = f"{settings.replicas} replica{'s' if settings.replicas > 1 else ''} each"
        typer.echo(f"serving {settings.model!r} from {settings.model_repo} ({each}, {settings.threads} "
                   f"ONNX Runtime thread{'s' if settings.threads > 1 else ''} per inference replica)")
        typer.echo(f"  APS        {stack.urls['aps']}/predict   (docs: {stack.urls['aps']}/docs)")
        typer.echo(f"  inference  {stack.urls['inference_http']}/v2   {stack.urls['inference_grpc']}")
        typer.echo(f"  logs       {stack.log_dir}")
        typer.echo(f"try: {stack.curl_example()}")
        typer.echo("Ctrl-C to stop")

    supervise(settings, wait_s=wait_s, log_dir=default_log_dir(settings.model, workspace_of(ctx).home),
              on_ready=ready, on_stopping=lambda: typer.echo("stopping ...", err=True),
              on_event=lambda line: typer.echo(line, err=True))


@serve_app.command("export")
def serve_export(
    ctx: typer.Context,
    model: ModelArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the YAML into.")] = Path("deploy"),
    k8s: Annotated[bool, typer.Option("--k8s", help="Deployment + Service for each server.")] = False,
    kserve: Annotated[bool, typer.Option("--kserve", help="A KServe InferenceService (transformer + predictor).")] = (
        False
    ),
    model_repo: RepoOption = None,
    version: VersionOption = None,
    handler: HandlerOption = None,
    replicas: ReplicasOption = None,
    cpus: CpusOption = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory per replica: 512Mi, 2Gi [1Gi].")] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Container image with aiforge installed [aiforge:latest].")
    ] = None,
    model_pvc: Annotated[
        str | None,
        typer.Option("--model-pvc", help="PersistentVolumeClaim holding the model repository, mounted at "
                     "/mnt/models [default: none; the image holds the models there]."),
    ] = None,
    port: PortOption = None,
    http_port: HttpPortOption = None,
    grpc_port: GrpcPortOption = None,
    max_batch_size: BatchOption = None,
    max_queue_delay_ms: DelayOption = None,
    token_env: TokenEnvOption = None,
    metrics_public: MetricsPublicOption = None,
    config: ConfigOption = None,
) -> None:
    """Write Kubernetes manifests (--k8s) or a KServe InferenceService (--kserve) that serve MODEL on a cluster.

    The same settings as 'aiforge serve up'. The handler file (unless it is inside the model repository) and the
    BATCH transform a TransformHandler reads are shipped in a ConfigMap mounted in the APS pods; the file's header
    lists what the deployment carries and what the image must hold. A bearer token (--token-env NAME) is read from
    the Secret <model>-token, key 'token', which you create; the token is never written.

    MODEL may be NAME@ALIAS or NAME@vN, as for 'aiforge serve up'.

    Example: aiforge serve export churn --k8s --out deploy --replicas 3 --cpus 2 --memory 2Gi --image reg/aiforge:1
    """
    if not (k8s or kserve):
        raise typer.BadParameter("pass --k8s, --kserve or both", param_hint="'--k8s' / '--kserve'")
    model, model_repo, version = _from_registry(ctx, model, model_repo, version)
    from aiforge.serve.deploy.manifests import write_manifests

    settings = _settings(
        config, model=model, model_repo=model_repo, version=version, handler=handler, replicas=replicas, cpus=cpus,
        memory=memory, image=image, model_pvc=model_pvc, aps_port=port, http_port=http_port, grpc_port=grpc_port,
        max_batch_size=max_batch_size, max_queue_delay_ms=max_queue_delay_ms, token_env=token_env,
        metrics_public=metrics_public,
    )
    if settings.handler is None:
        typer.echo("note: no --handler: the APS pods run the default handler ({\"instances\": rows}); if "
                   "'serve up' ran with --handler, pass the same one here", err=True)
    kinds = [kind for kind, wanted in (("k8s", k8s), ("kserve", kserve)) if wanted]
    for kind in kinds:
        for path in write_manifests(settings, out, kind=kind):
            typer.echo(f"wrote {path}")
    typer.echo(f"apply with: kubectl apply -f {out}")
