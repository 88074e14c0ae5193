"""``runyard demo``: a workspace, a small scikit-learn project, one submitted run, its results."""
from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

PROJECT = Path(__file__).parent / "project"


def run_demo(folder: Path, console: Console) -> str:
    """Set up ``folder`` (a workspace in ``folder/.runyard`` and the project in ``folder/digits``), submit, report.

    Returns the run id.
    """
    from runyard import Experiment, ScriptRunConfig, Workspace

    folder = folder.absolute()
    ws = Workspace.create(folder)
    project = folder / "digits"
    project.mkdir(parents=True, exist_ok=True)
    for source in sorted(PROJECT.glob("*.py")):
        shutil.copyfile(source, project / source.name)
    console.print(f"workspace [bold]{ws.name}[/bold] at {ws.path}\nproject   {project} (train.py, utils.py)\n", highlight=False)

    config = ScriptRunConfig(source_directory=project, script="train.py",
                             arguments=["--epochs", 15, "--learning-rate", 0.01])
    run = Experiment(ws, "digits").submit(config, tags={"demo": "sklearn-digits"})
    console.print(f"submitted [bold]{run.id}[/bold] to the local target; its output:\n", highlight=False)
    run.wait_for_completion(show_output=True)

    metrics = run.get_metrics()
    table = Table("metric", "value", title="metrics", title_justify="left")
    for name in ("learning_rate", "final_acc"):
        table.add_row(name, f"{metrics[name]:.4g}")
    for name in ("training_acc", "validation_acc"):
        table.add_row(name, f"{len(metrics[name])} values, last {metrics[name][-1]:.3f}")
    console.print(table)
    files = Table("file", "bytes", title="files", title_justify="left")
    for artifact in ws.metadata.list_artifacts(run.id):
        files.add_row(artifact.path, str(artifact.size))
    console.print(files)
    console.print("\n" + next_steps(folder, run.id), highlight=False, soft_wrap=True)
    return run.id


def next_steps(folder: Path, run_id: str) -> str:
    """Commands that work as printed: ``runyard`` when it is the one on PATH, else this interpreter's, by its path."""
    import os
    import shlex
    import sys

    here = Path(sys.executable).parent / "runyard"
    found = shutil.which("runyard")
    on_path = found is not None and os.path.realpath(found) == os.path.realpath(here)
    if on_path:
        cmd = "runyard"
    else:
        cmd = shlex.quote(str(here)) if here.exists() else f"{shlex.quote(sys.executable)} -m runyard"
    lines = [f"cd {shlex.quote(str(folder))}",
             f"{cmd} ui    # the studio: open http://127.0.0.1:5600/#/run/{run_id}",
             f"{cmd} runs list", f"{cmd} runs show {run_id}", f"{cmd} logs {run_id}", f"{cmd} metrics {run_id}",
             f"{cmd} download {run_id} outputs"]
    text = "next:\n" + "\n".join("  " + line for line in lines)
    if not on_path and here.exists():
        text += f"\n(or `source {shlex.quote(str(here.parent / 'activate'))}` once, then type `runyard …`)"
    return text
