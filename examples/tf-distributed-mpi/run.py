"""tf-distributed-mpi: data-parallel TensorFlow on MPI, the Horovod way, in the two forms Azure ML had.

    python examples/tf-distributed-mpi/run.py            # the full set, 5 epochs, 2 processes
    python examples/tf-distributed-mpi/run.py --quick    # 10,000 images, 2 epochs: what CI runs

Needs Open MPI's mpirun and a C++ compiler (apt-get install openmpi-bin libopenmpi-dev g++ libhighwayhash-dev
libfarmhash-dev). As on Azure's TensorFlow images, a TensorFlow estimator with MPI gets Horovod and mpi4py: runyard
compiles Horovod for the environment's TensorFlow the first time (a few minutes, then cached). The script uses
Horovod, or mpi4py in an environment without it.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

from runyard import Experiment, MpiConfiguration, Workspace  # noqa: E402
from runyard.train.dnn import TensorFlow  # noqa: E402

args = utils.walkthrough_args("tf-distributed-mpi", __doc__)
work = args.workdir

ws = Workspace.from_config()
ds, _ = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded to the default datastore
script_folder = utils.script_folder(work / "tf-horovod", HERE / "tf_horovod_mnist.py")
script_params = {"--data-folder": ds.path("mnist").as_mount(), "--epochs": 2 if args.quick else 5}
experiment = Experiment(ws, "tf-distributed-mpi")

# The 2018 form: counts and distributed_backend='mpi' on the estimator.
est = TensorFlow(source_directory=str(script_folder), script_params=script_params, compute_target="local",
                 entry_script="tf_horovod_mnist.py", node_count=1, process_count_per_node=2,
                 distributed_backend="mpi")
run = experiment.submit(est)
run.wait_for_completion(show_output=True)
print("estimator form:", run.get_metrics())

# The later form: an MpiConfiguration.
est = TensorFlow(source_directory=str(script_folder), script_params=script_params, compute_target="local",
                 entry_script="tf_horovod_mnist.py", distributed_training=MpiConfiguration(process_count_per_node=2))
run = experiment.submit(est)
run.wait_for_completion(show_output=True)
print("MpiConfiguration form:", run.get_metrics())
rank1 = work / "rank1.txt"
run.download_file("logs/user_log_1.txt", output_file_path=str(rank1))
print("rank 1's last line:", rank1.read_text().splitlines()[-1])
