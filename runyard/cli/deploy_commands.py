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
    name: str = typer.Option(..., "--name", help="The service's name."),
    entry_script: Optional[str] = typer.Option(None, "--entry-script", help="A scoring script (init(), run(raw_data)); "
                                               "without one the model's framework serves it."),
    source_directory: Path = typer.Option(Path("."), "--source-directory", help="Where the scoring script is."),
    environment: Optional[str] = typer.Option(None, "--environment", help="A registered environment NAME[:VERSION]."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)."),
    auth: bool = typer.Option(False, "--auth", help="Require 'Authorization: Bearer <key>'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a service of that name."),
) -> None:
    """Serve a registered model on this machine; prints its scoring URI (and keys with --auth)."""
    from runyard.config.environment import Environment
    from runyard.deploy import InferenceConfig, LocalWebservice
    from runyard.deploy import deploy as deploy_service

    ws = current_workspace()
    env = None
    if environment:
        env_name, _, version = environment.partition(":")
        env = Environment.get(ws, env_name, version or None)
    inference = InferenceConfig(entry_script, str(source_directory), env) if entry_script or env else None
    service = deploy_service(ws, name, [model_ref(ws, model)], inference,
                             LocalWebservice.deploy_configuration(port=port, auth_enabled=auth), overwrite)
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
def services_logs(name: str = typer.Argument(...), lines: int = typer.Option(200, "-n", help="Last N lines.")) -> None:
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
