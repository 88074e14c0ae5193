"""The run-history API tour: an interactive run with child runs, then a training script submitted as a run.

    python examples/demo.py            (after `bash scripts/setup.sh`; `runyard demo` is the shorter main demo)
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from runyard import Experiment, ScriptRunConfig, Workspace  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    ws = Workspace.from_config()
    print(f"workspace: {ws.path}")
    exp = Experiment(ws, "digits")

    # 1. An interactive run with one child run per cross-validation fold.
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    with exp.start_logging(display_name="nearest-centroid 5-fold", outputs=False) as run:
        run.tag("model", "nearest-centroid")
        run.add_properties({"dataset": "sklearn digits", "samples": str(len(x))})
        folds = np.array_split(np.random.default_rng(0).permutation(len(x)), 5)
        accs = []
        for i, test in enumerate(folds):
            train = np.setdiff1d(np.arange(len(x)), test)
            with run.child_run(f"fold-{i}") as fold:
                centroids = np.stack([x[train][y[train] == c].mean(0) for c in range(10)])
                pred = ((x[test][:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
                acc = float(np.mean(pred == y[test]))
                fold.log("accuracy", acc)
                accs.append(acc)
            run.log("fold accuracy", acc)
        run.log("mean accuracy", float(np.mean(accs)))
        plt.figure()
        plt.bar(range(5), accs)
        plt.title("accuracy per fold")
        run.log_image("folds", plot=plt)
    print(f"run {run.id}: {run.get_status()}, mean accuracy {run.get_metrics()['mean accuracy']:.3f}")
    print(f"  children: {[round(m.get('accuracy', 0), 3) for m in run.get_metrics(recursive=True).values() if m.get('accuracy')]}")

    # 2. A training script submitted as a run: snapshotted, started by a supervisor, its output captured.
    config = ScriptRunConfig(source_directory=HERE / "digits", script="train.py", arguments=["--lr", 0.5])
    script_run = exp.submit(config, display_name="train.py (softmax regression)")
    script_run.wait_for_completion(show_output=True)
    metrics = script_run.get_metrics()
    print(f"run {script_run.id}: {script_run.get_status()}, accuracy {metrics['accuracy']:.3f}, "
          f"{len(metrics['loss'])} loss values, files {script_run.get_file_names()}")
    print("\nnext: runyard runs list | runyard runs show RUN | runyard logs RUN | runyard metrics RUN | "
          "runyard download RUN outputs")


if __name__ == "__main__":
    main()
