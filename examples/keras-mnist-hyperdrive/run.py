"""keras-mnist-hyperdrive: tune a Keras network on MNIST with HyperDrive, then register the best trial's model.

    python examples/keras-mnist-hyperdrive/run.py            # the full set: 20 trials of 20 epochs, 4 at once
    python examples/keras-mnist-hyperdrive/run.py --quick    # 10,000 images: 4 trials of 4 epochs, 2 at once (CI)
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

from runyard import Experiment, Model, Workspace  # noqa: E402
from runyard.hyperdrive import (  # noqa: E402
    BanditPolicy,
    HyperDriveConfig,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
    loguniform,
)
from runyard.train.dnn import TensorFlow  # noqa: E402
from runyard.widgets import RunDetails  # noqa: E402

args = utils.walkthrough_args("keras-mnist-hyperdrive", __doc__)
work = args.workdir

ws = Workspace.from_config()
ds, _ = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded to the default datastore

script_folder = utils.script_folder(work / "keras-mnist", HERE / "keras_mnist.py")
est = TensorFlow(source_directory=str(script_folder),
                 script_params={"--data-folder": ds.path("mnist").as_mount(), "--epochs": 4 if args.quick else 20},
                 compute_target="local", entry_script="keras_mnist.py", pip_packages=["matplotlib"])

# Random sampling over batch size and layer sizes, and the learning rate on a log scale (e^-9 … e^-4).
param_sampling = RandomParameterSampling({
    "--batch-size": choice(32, 64, 128),
    "--first-layer-neurons": choice(64, 128, 300),
    "--second-layer-neurons": choice(32, 64, 100),
    "--learning-rate": loguniform(-9, -4),
})
# Stop trials whose Accuracy falls more than 10% behind the best, checked every 2 epochs after the first 2.
early_termination_policy = BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=2)
hyperdrive_config = HyperDriveConfig(estimator=est,
                                     hyperparameter_sampling=param_sampling,
                                     policy=early_termination_policy,
                                     primary_metric_name="Accuracy",
                                     primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                                     max_total_runs=4 if args.quick else 20,
                                     max_concurrent_runs=2 if args.quick else 4)
hyperdrive_run = Experiment(ws, "keras-mnist").submit(hyperdrive_config)
RunDetails(hyperdrive_run).show()
hyperdrive_run.wait_for_completion(show_output=True)

for child in hyperdrive_run.get_children_sorted_by_primary_metric(top=5):
    print(child)
best_run = hyperdrive_run.get_best_run_by_primary_metric()
best_metrics = best_run.get_metrics()
print("best run:", best_run.id)
print("  arguments:", best_run.get_details()["runDefinition"]["arguments"])
print("  accuracy:", best_metrics["Final test accuracy"])
print("  files:", best_run.get_file_names())

model = best_run.register_model(model_name="keras-mlp-mnist", model_path="outputs/model",
                                model_framework=Model.Framework.TENSORFLOW,
                                model_framework_version=best_run.get_environment().python.framework["version"],
                                tags={"accuracy": f"{best_metrics['Final test accuracy']:.4f}"})
print("registered", model.name, "version", model.version)
