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
    console.print(f"\nnext (in {folder}):\n  runyard runs list\n  runyard runs show {run.id}\n  runyard logs {run.id}\n"
                  f"  runyard metrics {run.id}\n  runyard download {run.id} outputs", highlight=False)
    return run.id
