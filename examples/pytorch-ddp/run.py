"""pytorch-ddp: PyTorch DistributedDataParallel on MNIST — 2 processes here, then 2 nodes on a Ray cluster.

    python examples/pytorch-ddp/run.py            # the full set, 3 epochs
    python examples/pytorch-ddp/run.py --quick    # 10,000 images, 2 epochs: what CI runs

The 2-node part runs when RUNYARD_CLUSTER names a Ray cluster (its dashboard, e.g. http://head:8265): an AmlCompute
target is created on it, as an Azure ML notebook would; without one that part is skipped with a note.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

from runyard import Experiment, Model, PyTorchConfiguration, Workspace  # noqa: E402
from runyard.compute import AmlCompute, ComputeTarget, ComputeTargetException  # noqa: E402
from runyard.train.dnn import PyTorch  # noqa: E402

args = utils.walkthrough_args("pytorch-ddp", __doc__)
work = args.workdir

ws = Workspace.from_config()
ds, _ = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded to the default datastore
script_folder = utils.script_folder(work / "pytorch-ddp", HERE / "pytorch_mnist.py")
script_params = {"--data-folder": ds.path("mnist").as_mount(), "--epochs": 2 if args.quick else 3}
experiment = Experiment(ws, "pytorch-ddp")

# 1. Two processes on this machine: the PyTorch estimator with a PyTorchConfiguration.
est = PyTorch(source_directory=str(script_folder), script_params=script_params, compute_target="local",
              entry_script="pytorch_mnist.py", pip_packages=["numpy"],
              distributed_training=PyTorchConfiguration(communication_backend="Gloo", process_count=2))
run = experiment.submit(est)
run.wait_for_completion(show_output=True)
print("2 processes here:", run.get_metrics())
model = run.register_model(model_name="pytorch-mnist", model_path="outputs/model.pt",
                           model_framework=Model.Framework.PYTORCH,
                           model_framework_version=run.get_environment().python.framework["version"])
print("registered", model.name, "version", model.version)

# 2. Two nodes on a Ray cluster, through Azure's AmlCompute idiom.
if not os.environ.get("RUNYARD_CLUSTER"):
    print("RUNYARD_CLUSTER is not set: the 2-node part needs a Ray cluster (see README.md); skipped")
    sys.exit(0)
try:
    cluster = ComputeTarget(workspace=ws, name="ray-cluster")
except ComputeTargetException:
    cluster = ComputeTarget.create(ws, "ray-cluster", AmlCompute.provisioning_configuration(max_nodes=2))
cluster.wait_for_completion(show_output=True, min_node_count=2, timeout_in_minutes=5)
est = PyTorch(source_directory=str(script_folder), script_params=script_params, compute_target=cluster,
              entry_script="pytorch_mnist.py", node_count=2, pip_packages=["numpy"],
              distributed_training=PyTorchConfiguration(communication_backend="Gloo"))
run = experiment.submit(est)
run.wait_for_completion(show_output=True)
print("2 nodes on Ray:", run.get_metrics())
