"""``runyard compute``: the workspace's compute targets (``local`` and Ray clusters)."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import app, console, current_workspace, friendly, when
from runyard.errors import ConfigError

compute_app = typer.Typer(help="Compute targets: list, create (a Ray cluster), show, delete.", no_args_is_help=True)
app.add_typer(compute_app, name="compute")


@compute_app.command("list")
@friendly
def compute_list() -> None:
    """Every compute target with its type, state and nodes."""
    ws = current_workspace()
    table = Table("name", "type", "state", "nodes", "CPU", "GPU", "address")
    for name, target in ws.compute_targets.items():
        status = target.get_status()
        config = getattr(target, "config", None)
        address = (config.address or "") if config is not None and config.mode == "attach" else \
            (target.state.get("dashboard", "") if config is not None else "this machine")
        table.add_row(name, target.type, status.provisioning_state, str(status.node_count), f"{status.cpus:g}",
                      f"{status.gpus:g}", address)
    console.print(table)


@compute_app.command("create")
@friendly
def compute_create(
    name: str = typer.Argument(..., help="Name of the new target."),
    address: Optional[str] = typer.Option(None, "--address", help="Attach an existing Ray cluster: its dashboard "
                                          "(http://head:8265), ray://head:10001 or head:6379."),
    dashboard_address: Optional[str] = typer.Option(None, "--dashboard-address",
                                                    help="The dashboard, when it is not at the address's host:8265."),
    max_nodes: int = typer.Option(4, "--max-nodes", help="Provision: most nodes the local cluster grows to."),
    min_nodes: int = typer.Option(1, "--min-nodes", help="Provision: nodes started now."),
    cpus_per_node: Optional[int] = typer.Option(None, "--cpus-per-node", help="Provision: CPUs each node offers."),
    gpus_per_node: int = typer.Option(0, "--gpus-per-node", help="Provision: GPUs each node offers."),
    strategy: str = typer.Option("STRICT_SPREAD", "--placement-strategy",
                                 help="STRICT_SPREAD (a job's nodes on different Ray nodes), SPREAD, PACK, STRICT_PACK."),
    python: Optional[str] = typer.Option(None, "--python", help="Attach: the interpreter that runs runyard's driver on "
                                         "the head node."),
) -> None:
    """Attach a Ray cluster (--address) or start one on this machine (the default)."""
    from runyard.compute import ComputeTarget, RayCompute

    ws = current_workspace()
    if address:
        config = RayCompute.attach_configuration(address, dashboard_address=dashboard_address,
                                                 placement_strategy=strategy, python=python)
    elif dashboard_address or python:
        raise ConfigError("--dashboard-address and --python go with --address (attaching a cluster)")
    else:
        config = RayCompute.provisioning_configuration(max_nodes=max_nodes, min_nodes=min_nodes,
                                                       cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
                                                       placement_strategy=strategy)
    target = ComputeTarget.create(ws, name, config)
    status = target.wait_for_completion(show_output=False, min_node_count=max(min_nodes, 1) if not address else None)
    console.print(f"created {name}: {status.node_count} node(s), {status.cpus:g} CPU, {status.gpus:g} GPU "
                  f"(dashboard {target.dashboard})")


@compute_app.command("show")
@friendly
def compute_show(name: str = typer.Argument(...)) -> None:
    """A target's configuration and status, as JSON."""
    from runyard.compute import ComputeTarget

    ws = current_workspace()
    target = ComputeTarget(ws, name)
    out = {"name": name, "type": target.type, **target.get_status().serialize()}
    config = getattr(target, "config", None)
    if config is not None:
        record = ws.metadata.get_compute_target(name)
        out.update(configuration=config.to_dict(), created=when(record.created_at), state=record.state)
    console.print_json(json.dumps(out, default=str))


@compute_app.command("delete")
@friendly
def compute_delete(name: str = typer.Argument(...)) -> None:
    """Stop a cluster runyard started, and remove the target from the workspace."""
    from runyard.compute import ComputeTarget

    ComputeTarget(current_workspace(), name).delete()
    console.print(f"deleted {name}")
