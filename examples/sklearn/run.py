"""sklearn: logistic regression on MNIST with an Estimator whose environment lists conda_packages=['scikit-learn'].

    python examples/sklearn/run.py            # the full set
    python examples/sklearn/run.py --quick    # 10,000 images: what CI runs

Shows the run's outputs (the pickled model) and logs (its output, and TensorBoard event files written to ./logs),
then registers the model and scores test images with it locally.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

import joblib  # noqa: E402

from runyard import Experiment, Model, Workspace  # noqa: E402
from runyard.train.estimator import Estimator  # noqa: E402

args = utils.walkthrough_args("sklearn", __doc__)
work = args.workdir

ws = Workspace.from_config()
ds, data_folder = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded

script_folder = utils.script_folder(work / "sklearn-mnist", HERE / "train_sklearn.py")
est = Estimator(source_directory=str(script_folder),
                script_params={"--data-folder": ds.path("mnist").as_mount(), "--regularization": 0.8},
                compute_target="local",
                entry_script="train_sklearn.py",
                conda_packages=["scikit-learn"],
                pip_packages=["tensorboard"])
run = Experiment(workspace=ws, name="sklearn-mnist").submit(config=est)
run.wait_for_completion(show_output=True)
print(run.get_metrics())
print(run.get_file_names())

model = run.register_model(model_name="sklearn_mnist", model_path="outputs/sklearn_mnist_model.pkl",
                           model_framework=Model.Framework.SCIKITLEARN, tags={"data": "mnist", "model": "classification"})
print(model.name, model.id, model.version, sep="\t")

clf = joblib.load(model.download(target_dir=str(work / "model"), exist_ok=True))
_, _, X_test, y_test = utils.load_mnist(data_folder)
print("local accuracy of the registered model:", float((clf.predict(X_test) == y_test).mean()))
print(f"TensorBoard over its ./logs: runyard tensorboard {run.id}")
