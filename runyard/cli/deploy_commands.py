"""``runyard deploy`` and ``runyard services``: models served as local web services."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import app, console, current_workspace, friendly, model_ref

services_app = typer.Typer(help="Deployed services: list, logs, delete.", no_args_is_help=True)
app.add_typer(services_app, name="services")


@app.command("deploy")
@friendly
def deploy(
    model: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    name: Optional[str] = typer.Option(None, "--name", help="The service's name (with --image: also start a service "
                                       "of the image under this name)."),
    image: Optional[str] = typer.Option(None, "--image", help="Build a container image NAME[:TAG] that serves the "
                                        "model (runs anywhere Docker does: docker run --network host IMAGE)."),
    entry_script: Optional[str] = typer.Option(None, "--entry-script", help="A scoring script (init(), run(raw_data)); "
                                               "without one the model's framework serves it."),
    source_directory: Path = typer.Option(Path("."), "--source-directory", help="Where the scoring script is."),
    environment: Optional[str] = typer.Option(None, "--environment", help="A registered environment NAME[:VERSION]."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)."),
    auth: bool = typer.Option(False, "--auth", help="Require 'Authorization: Bearer <key>'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a service of that name."),
) -> None:
    """Serve a registered model on this machine; prints its scoring URI (and keys with --auth). With --image, build
    an image that serves it instead (and start a service of it when --name is given too)."""
    from runyard.config.environment import Environment
    from runyard.deploy import InferenceConfig, LocalWebservice
    from runyard.deploy import deploy as deploy_service

    ws = current_workspace()
    if name is None and image is None:
        raise typer.BadParameter("give --name (a service here), --image (an image), or both")
    env = None
    if environment:
        env_name, _, version = environment.partition(":")
        env = Environment.get(ws, env_name, version or None)
    inference = InferenceConfig(entry_script, str(source_directory), env) if entry_script or env else None
    config = LocalWebservice.deploy_configuration(port=port, auth_enabled=auth)
    if image is not None:
        from runyard.deploy import package
        from runyard.environments.docker import split_tag

        repo, tag = split_tag(image)
        built = package(ws, [model_ref(ws, model)], inference, image_name=repo,
                        image_label=tag if repo != image else None)  # no tag given: one from the contents
        built.wait_for_creation(show_output=True)
        console.print(f"built image {built.location}: docker run --rm --network host -e RUNYARD_SERVICE_PORT=5001 "
                      f"{built.location}  →  POST http://127.0.0.1:5001/score", highlight=False, soft_wrap=True)
        if name is None:
            return
        service = LocalWebservice.deploy_from_image(ws, name, built, config, overwrite=overwrite)
    else:
        service = deploy_service(ws, name, [model_ref(ws, model)], inference, config, overwrite)
    service.wait_for_deployment()
    console.print(f"{name}: Healthy, serving {', '.join(service.models)} at {service.scoring_uri}", highlight=False)
    if auth:
        console.print(f"primary key: {service.get_keys()[0]}", highlight=False)


@services_app.command("list")
@friendly
def services_list() -> None:
    """Every service with its state, models and scoring URI."""
    from runyard.deploy import LocalWebservice

    table = Table("name", "state", "models", "scoring URI", "auth")
    for service in LocalWebservice.list(current_workspace()):
        table.add_row(service.name, service.state, ", ".join(service.models), service.scoring_uri,
                      "key" if service.auth_enabled else "none")
    console.print(table)


@services_app.command("logs")
@friendly
def services_logs(name: str = typer.Argument(...), lines: int = typer.Option(200, "-n", min=1, help="Last N lines.")) -> None:
    """The service's log (start-up, errors with their tracebacks)."""
    from runyard.deploy import LocalWebservice

    print(LocalWebservice(current_workspace(), name).get_logs(lines))


@services_app.command("delete")
@friendly
def services_delete(name: str = typer.Argument(...)) -> None:
    """Stop the service (its port is freed) and remove it."""
    from runyard.deploy import LocalWebservice

    LocalWebservice(current_workspace(), name).delete()
    console.print(f"deleted {name}", highlight=False)
