"""tf-parameter-server: TensorFlow with parameter servers — 2 workers and 1 ps — in the two forms Azure ML had.

    python examples/tf-parameter-server/run.py            # the full set, 4,000 global steps
    python examples/tf-parameter-server/run.py --quick    # 10,000 images, 600 global steps: what CI runs

The first job's script parses TF_CONFIG by hand (Azure ML's seed script did); the second reads it with
TFConfigClusterResolver.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

from runyard import Experiment, ScriptRunConfig, TensorflowConfiguration, Workspace  # noqa: E402
from runyard.train.dnn import TensorFlow  # noqa: E402

args = utils.walkthrough_args("tf-parameter-server", __doc__)
work = args.workdir

ws = Workspace.from_config()
ds, _ = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded to the default datastore
script_folder = utils.script_folder(work / "tf-ps", HERE / "tf_mnist_replica.py")
steps = 600 if args.quick else 4000
experiment = Experiment(ws, "tf-parameter-server")

# The estimator form: worker_count, parameter_server_count and distributed_backend='ps'. TF_CONFIG parsed by hand.
est = TensorFlow(source_directory=str(script_folder), compute_target="local", entry_script="tf_mnist_replica.py",
                 script_params={"--data-folder": ds.path("mnist").as_mount(), "--train-steps": steps},
                 worker_count=2, parameter_server_count=1, distributed_backend="ps")
run = experiment.submit(est)
run.wait_for_completion(show_output=True)
print("TF_CONFIG by hand:", run.get_metrics())

# A ScriptRunConfig with a TensorflowConfiguration, in the same environment; TFConfigClusterResolver reads TF_CONFIG.
src = ScriptRunConfig(source_directory=str(script_folder), script="tf_mnist_replica.py", compute_target="local",
                      arguments=["--data-folder", ds.path("mnist").as_mount(), "--train-steps", steps, "--use-resolver"],
                      environment=run.get_environment(),
                      distributed_job_config=TensorflowConfiguration(worker_count=2, parameter_server_count=1))
run = experiment.submit(src)
run.wait_for_completion(show_output=True)
print("TFConfigClusterResolver:", run.get_metrics())
print("files:", run.get_file_names())
