"""The ``runyard`` command line (typer + rich): tables, not dumps."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import (
    app,
    console,
    current_workspace,
    duration,
    err,
    friendly,
    redact_url,
    runs_app,
    size_text,
    styled_status,
    value_text,
    when,
)
from runyard.config.job import JobSpec
from runyard.errors import NotFound, ValidationError


@app.command()
@friendly
def init(
    path: Path = typer.Argument(Path("."), help="Project folder; the workspace goes in PATH/.runyard."),
    tracking_uri: Optional[str] = typer.Option(None, help="Metadata store URL, e.g. postgresql+psycopg://user@host/db."),
    artifact_uri: Optional[str] = typer.Option(None, help="Artifact store root (folder or s3://, gs://, az:// URL)."),
) -> None:
    """Create a project workspace (PATH/.runyard/config.json)."""
    from runyard.workspace import Workspace

    ws = Workspace.create(path, tracking_uri=tracking_uri, artifact_uri=artifact_uri)
    experiments = ws.metadata.list_experiments()  # opens (and migrates) the store now: a bad URL is reported here
    console.print(f"workspace [bold]{ws.name}[/bold] at {ws.path}\n  metadata: {redact_url(ws.tracking_uri)} "
                  f"({len(experiments)} experiments)\n  artifacts: {ws.artifact_uri}")


@app.command("experiments")
@friendly
def experiments() -> None:
    """List experiments."""
    ws = current_workspace()
    table = Table("experiment", "created", "runs")
    for exp in ws.metadata.list_experiments():
        table.add_row(exp.name, when(exp.created_at), str(ws.metadata.count_runs(experiment_id=exp.id, top_level_only=True)))
    console.print(table)


@runs_app.command("list")
@friendly
def runs_list(
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    status: Optional[str] = typer.Option(None, "--status", "-s", help="Only runs with this status."),
    children: bool = typer.Option(False, "--children", help="Include child runs."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show at most this many runs."),
    offset: int = typer.Option(0, "--offset", help="Skip this many (for paging)."),
) -> None:
    """List runs, newest first, with status and duration."""
    from runyard.status import RunStatus

    ws = current_workspace()
    exp_id = ws.metadata.get_experiment(experiment).id if experiment else None
    infos = ws.metadata.list_runs(
        experiment_id=exp_id,
        top_level_only=not children,
        statuses=[RunStatus.parse(status)] if status else None,
        limit=limit,
        offset=offset,
    )
    table = Table("run", "experiment", "name", "type", "target", "status", "started", "duration")
    table.columns[0].no_wrap = True
    for info in infos:
        table.add_row(
            info.run_id,
            info.experiment_name,
            info.display_name or "",
            info.run_type,
            info.compute_target or "",
            styled_status(info.status.value),
            when(info.start_time or info.created_at),
            duration(info.duration),
        )
    console.print(table)
    if len(infos) == limit:
        console.print(f"[dim]showing {limit} runs from {offset}; --offset {offset + limit} for more[/dim]")


@runs_app.command("show")
@friendly
def runs_show(run_id: str = typer.Argument(..., help="Run id.")) -> None:
    """Show a run: status, times, tags, properties, error, children, files."""
    ws = current_workspace()
    run = ws.get_run(run_id)
    info = run._refresh()
    table = Table(show_header=False, box=None)
    for key, value in (
        ("run", info.run_id),
        ("experiment", info.experiment_name),
        ("name", info.display_name or ""),
        ("type", info.run_type),
        ("status", styled_status(info.status.value)),
        ("parent", info.parent_run_id or ""),
        ("target", info.compute_target or ""),
        ("script", " ".join([info.definition["script"], *info.definition["arguments"]]) if info.definition else ""),
        ("created", when(info.created_at)),
        ("started", when(info.start_time)),
        ("ended", when(info.end_time)),
        ("duration", duration(info.duration)),
        ("exit code", "" if info.exit_code is None else str(info.exit_code)),
    ):
        table.add_row(f"[bold]{key}[/bold]", value)
    console.print(table)
    for title, values in (("tags", info.tags), ("properties", info.properties), ("params", info.params)):
        if values:
            kv = Table(title, "value", title_justify="left")
            for k, v in values.items():
                kv.add_row(k, v)
            console.print(kv)
    if info.error:
        console.print(f"[red bold]error:[/red bold] {info.error.get('message', info.error)}", highlight=False)
        if info.error.get("last_lines"):
            console.print("\n".join(info.error["last_lines"]), highlight=False, markup=False)
    children = list(run.get_children())
    if children:
        console.print(f"[bold]children:[/bold] {', '.join(c.id for c in children)}")
    files = ws.metadata.list_artifacts(info.run_id)
    if files:
        ft = Table("file", "size")
        for f in files:
            ft.add_row(f.path, size_text(f.size))
        console.print(ft)


@app.command()
@friendly
def metrics(
    run_id: str = typer.Argument(..., help="Run id."),
    name: Optional[str] = typer.Option(None, "--name", help="Show every value of this metric."),
) -> None:
    """A run's metrics: the last value and count of each, or every value of one (--name)."""
    ws = current_workspace()
    run = ws.get_run(run_id)
    if name:
        history = ws.metadata.get_metric_history([run.id], [name])
        if not history:
            known = sorted(m.name for m in ws.metadata.get_latest_metrics([run.id]))
            raise NotFound(f"run {run.id} has no metric {name!r}" + (f"; it has: {', '.join(known)}" if known else
                                                                      " (it logged no metrics)"))
        table = Table("step", name, "time")
        for rec in history:
            table.add_row(str(rec.step), value_text(rec.value), when(rec.timestamp))
        console.print(table)
        return
    table = Table("metric", "last value", "step", "values", "kind")
    for m in ws.metadata.get_latest_metrics([run.id]):
        table.add_row(m.name, value_text(m.value), str(m.step), str(m.value_count), m.kind)
    console.print(table)


@app.command()
@friendly
def download(
    run_id: str = typer.Argument(..., help="Run id."),
    prefix: Optional[str] = typer.Argument(None, help="Only files under this path, e.g. outputs."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder to download into."),
) -> None:
    """Download a run's files (keeping their relative paths)."""
    run = current_workspace().get_run(run_id)
    paths = run.download_files(prefix=prefix, output_directory=output, show_progress=True)
    console.print(f"downloaded {len(paths)} files to {output}")


@app.command()
@friendly
def sync() -> None:
    """Write metric values that were saved locally because the store was unreachable."""
    from runyard.context.logger import replay_spool

    ws = current_workspace()
    files, values = replay_spool(ws.metadata, ws.path / "spool")
    console.print(f"wrote {values} metric values from {files} spool files to {redact_url(ws.tracking_uri)}")


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@friendly
def submit(
    script: str = typer.Argument(..., help="Entry script, relative to the source directory."),
    args: Optional[list[str]] = typer.Argument(None, help="The script's arguments, after --: runyard submit train.py -- --lr 0.01"),
    source_directory: Path = typer.Option(Path("."), "--source-directory", "-s", help="Folder snapshotted and run from."),
    compute: str = typer.Option("local", "--compute", "-c", help="Compute target name."),
    experiment: str = typer.Option("default", "--experiment", "-e", help="Experiment name."),
    name: Optional[str] = typer.Option(None, "--name", help="Display name of the run."),
    tag: Optional[list[str]] = typer.Option(None, "--tag", help="KEY=VALUE tag; repeatable."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="Stop the run after this many seconds."),
    wait: bool = typer.Option(False, "--wait", "-W", help="Stream the run's output until it ends; exit 1 if it fails."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the request; store and start nothing."),
    environment: Optional[str] = typer.Option(None, "--environment", help="A registered environment NAME[:VERSION]."),
    requirements: Optional[Path] = typer.Option(None, "--requirements", "-r", help="Build the run's environment from "
                                                                                  "this requirements.txt."),
    conda_file: Optional[Path] = typer.Option(None, "--conda-file", help="Build it from this conda environment.yml."),
    pip: Optional[list[str]] = typer.Option(None, "--pip", help="A pip package for the run's environment; repeatable."),
    python: Optional[str] = typer.Option(None, "--python", help="Python version of the run's environment, e.g. 3.11."),
    use_gpu: bool = typer.Option(False, "--use-gpu", help="The run needs a GPU."),
    docker_image: Optional[str] = typer.Option(None, "--docker-image", help="Run every process in a container of this "
                                               "local image (packages given are installed inside it, once)."),
    memory: Optional[str] = typer.Option(None, "--memory", help="With --docker-image: each container's memory limit "
                                         "(512m, 4g)."),
    cpus: Optional[float] = typer.Option(None, "--cpus", help="With --docker-image: each container's CPU limit."),
    shm_size: Optional[str] = typer.Option(None, "--shm-size", help="With --docker-image: /dev/shm size (2g)."),
) -> None:
    """Submit a script as a run (it goes on after this command exits unless --wait).

    Without environment options the run uses this interpreter as it is; with --requirements, --conda-file, --pip or
    --environment it runs in an environment runyard builds (once, then from the cache). With --docker-image it runs
    in a container of that image: its own Python as it is, or with the packages given installed inside it."""
    from runyard.experiment import Experiment
    from runyard.train.estimator import Estimator

    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--tag {item!r}: use KEY=VALUE")
        tags[key] = value
    ws = current_workspace()
    env = None
    if environment or requirements or conda_file or pip or python:
        from runyard.cli.env_commands import environment_from_options

        env = environment_from_options(ws, environment, requirements, conda_file, list(pip or []), python, False)
    if docker_image:
        from runyard.config.environment import DockerSection, Environment

        env = env or Environment.from_docker_image("cli", docker_image)
        env.docker = DockerSection(enabled=True, base_image=docker_image, shm_size=shm_size, memory=memory, cpus=cpus)
    elif memory or cpus or shm_size:
        raise typer.BadParameter("--memory, --cpus and --shm-size limit a container: give --docker-image too")
    config = Estimator(source_directory, entry_script=script, arguments=list(args or []), compute_target=compute,
                       max_run_duration_seconds=max_duration, use_gpu=use_gpu, environment_definition=env)
    if dry_run:
        from runyard.submission import prepare
        from runyard.validation import experiment_name

        prepared = prepare(ws, experiment_name(experiment), config)
        from runyard.runtime.launch import preview

        console.print(prepared.snapshot.describe(), highlight=False)
        console.print_json(str(prepared.request))
        specs = preview(prepared.request)
        if specs:
            console.print("processes, were the run started now (it asks its launcher again, for ports free then, "
                          "when it gets its slot):", highlight=False)
            for spec in specs:
                console.print(f"  rank {spec.rank}: {' '.join(spec.argv)}", highlight=False, soft_wrap=True)
        return
    run = Experiment(ws, experiment).submit(config, tags=tags, display_name=name)
    console.print(f"submitted run [bold]{run.id}[/bold] ({run.get_status()}) to {compute}", highlight=False)
    if not wait:
        console.print(f"[dim]runyard logs -f {run.id}  |  runyard runs show {run.id}  |  runyard cancel {run.id}[/dim]")
        return
    try:
        run.wait_for_completion(show_output=True, raise_on_error=False)
    except KeyboardInterrupt:
        err.print(f"stopped waiting; the run goes on (runyard cancel {run.id} stops it)")
        raise typer.Exit(130) from None
    if run.get_status() != "Completed":
        raise typer.Exit(1)


@app.command()
@friendly
def logs(
    run_id: str = typer.Argument(..., help="Run id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing output until the run ends."),
    rank: int = typer.Option(0, "--rank", "-r", min=0, help="Which process of a distributed run."),
) -> None:
    """Print a run's output (captured stdout and stderr of one rank)."""
    from runyard.runtime.logfiles import stored_log

    run = current_workspace().get_run(run_id)
    info = run._refresh()
    processes = JobSpec.from_definition(info.definition).world_size if info.definition else 1
    if rank >= processes:
        raise ValidationError(f"run {run.id} has {processes} process(es): --rank is 0" +
                              (f"–{processes - 1}" if processes > 1 else ""))
    # A finished run's log is in the artifact store on every target: no need to load the targets to read it.
    target = None if info.status.is_terminal() and not follow else run._target()
    chunks = target.log_iter(run.id, rank=rank, follow=follow) if target else stored_log(run.workspace, run.id, rank)
    try:
        for text in chunks:
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
@friendly
def cancel(run_id: str = typer.Argument(..., help="Run id.")) -> None:
    """Cancel a run: its whole process tree is stopped and it ends Canceled (a finished run is left as is)."""
    run = current_workspace().get_run(run_id)
    before = run.get_status()
    run.cancel()
    after = run.get_status()
    note = "" if before != after else " (it had already finished)" if run._info.status.is_terminal() else ""
    console.print(f"run {run.id}: {after}{note}", highlight=False)


@app.command()
@friendly
def demo(
    folder: Path = typer.Argument(Path("runyard-demo"), help="Folder for the demo's workspace and project."),
) -> None:
    """Create a workspace, write a small scikit-learn project, submit it, stream its output, show its results."""
    from runyard.demo import run_demo

    run_demo(folder, console)


# -- formatting ----------------------------------------------------------------------------------
from runyard.cli import (
    compute_commands,  # noqa: E402,F401 - registers `runyard compute …` on app
    data_commands,  # noqa: E402,F401 - registers `runyard datastore …` and `runyard dataset …`
    deploy_commands,  # noqa: E402,F401 - registers `runyard deploy` and `runyard services …`
    env_commands,  # noqa: E402,F401 - registers `runyard env …` on app
    image_commands,  # noqa: E402,F401 - registers `runyard image …` on app
    model_commands,  # noqa: E402,F401 - registers `runyard models …` on app
    sweep_commands,  # noqa: E402,F401 - registers `runyard sweep …` on app
)


@app.command()
@friendly
def ui(host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (beyond loopback a token is required)."),
       port: int = typer.Option(5600, "--port", help="Port."),
       token: Optional[str] = typer.Option(None, "--token", envvar="RUNYARD_UI_TOKEN",
                                           help="Every API request needs it (generated when --host is not loopback)."),
       allow_host: list[str] = typer.Option([], "--allow-host",
                                            help="Another name the studio may be reached under (the Host header).")) -> None:
    """The web studio: runs (live), metrics, logs, models, services, datasets, compute, environments."""
    from runyard.ui import serve, studio_token

    token = studio_token(host, token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"runyard studio on {url}" + (" (the token is needed: open this URL)" if token else "")
                  + "; Ctrl-C stops it", highlight=False, soft_wrap=True)
    serve(current_workspace(), host=host, port=port, token=token, allow_hosts=tuple(allow_host))


@app.command()
@friendly
def tensorboard(run_ids: list[str] = typer.Argument(..., help="Runs whose logs/ folders to show, each named by its run."),
                port: Optional[int] = typer.Option(None, "--port", help="Port (default: a free one)."),
                stop: bool = typer.Option(False, "--stop", help="Stop the TensorBoard of these runs instead.")) -> None:
    """TensorBoard over runs' ./logs (event files the scripts wrote), on 127.0.0.1."""
    from runyard.ui import tensorboard as tb

    ws = current_workspace()
    if stop:
        console.print("stopped" if tb.stop(ws, run_ids) else "no TensorBoard of these runs is running")
        return
    info = tb.start(ws, run_ids, port=port)
    console.print(f"TensorBoard {'(already running) ' if info['reused'] else ''}at {info['url']} over {info['logdir']} "
                  f"(runs: {', '.join(info['runs'])}); stop it with: runyard tensorboard --stop {' '.join(run_ids)}",
                  highlight=False)


@app.command()
def migrate(paths: list[Path] = typer.Argument(..., help=".py and .ipynb files, or folders to search for them."),
            write: bool = typer.Option(False, "--write", help="Rewrite the files (default: show a diff only).")) -> None:
    """Port Azure ML v1 scripts and notebooks: rewrite their `azureml` imports to runyard's, nothing else.

    Prints a diff (or, with --write, what it rewrote) and what it could not map; exits 1 when something could not
    be mapped."""
    from runyard import migrate as m

    try:
        files = list(m.files_under(paths))
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    rewritten = unmapped = 0
    for path in files:
        try:
            report = m.migrate_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[red]error:[/red] {path}: cannot read it ({exc})", highlight=False)
            unmapped += 1
            continue
        for where, line, message in report.problems:
            place = ":".join(x for x in (str(path), where.replace("cell ", "cell"), str(line) if line else "") if x)
            err.print(f"[yellow]{place}[/yellow]: {message}", highlight=False, soft_wrap=True)
        unmapped += len(report.problems)
        if report.new_text is None:
            continue
        rewritten += 1
        if write:
            m.write(report)
            console.print(f"rewrote {path} ({len(report.changed)} import line(s))", highlight=False)
        else:
            console.out(report.diff(), highlight=False, end="")
    verb = "rewrote" if write else "would rewrite"
    console.print(f"{len(files)} file(s) read, {verb} {rewritten}; {unmapped} thing(s) could not be mapped"
                  + ("" if write or not rewritten else " — run again with --write to apply"), highlight=False)
    if unmapped:
        raise typer.Exit(1)
