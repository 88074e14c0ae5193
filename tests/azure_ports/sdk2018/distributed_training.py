# Distributed training with Azure ML (2018): MPI and PyTorch estimators on an AmlCompute cluster.
import azureml.core
from azureml.core import Workspace, Experiment
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.train.estimator import Estimator
from azureml.train.dnn import PyTorch
from azureml.telemetry import set_diagnostics_collection

# Check core SDK version number
print("SDK version:", azureml.core.VERSION)

set_diagnostics_collection(send_diagnostics=True)

ws = Workspace.from_config()
print('Workspace name: ' + ws.name,
      'Azure region: ' + ws.location,
      'Subscription id: ' + ws.subscription_id,
      'Resource group: ' + ws.resource_group, sep='\n')

# choose a name for your cluster
cluster_name = "gpucluster"

try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print('Found existing compute target.')
except ComputeTargetException:
    print('Creating a new compute target...')
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_NC6',
                                                           max_nodes=4)

    # create the cluster
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)

    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)

# use get_status() to get a detailed status for the current cluster.
print(compute_target.get_status().serialize())

experiment = Experiment(ws, name='distributed-2018')

# MPI: one process on each of two nodes
mpi_estimator = Estimator(source_directory='mpi_src',
                          compute_target=compute_target,
                          entry_script='train_mpi.py',
                          script_params={'--steps': 5},
                          node_count=2,
                          process_count_per_node=1,
                          distributed_backend='mpi',
                          use_gpu=False)
run = experiment.submit(mpi_estimator)
print(run)
run.wait_for_completion(show_output=True)
print(run.get_metrics())

# PyTorch with Gloo: the script joins the process group itself
pt_estimator = PyTorch(source_directory='pytorch_src',
                       script_params={'--dist-backend': 'gloo',
                                      '--dist-url': '$AZ_BATCHAI_PYTORCH_INIT_METHOD',
                                      '--rank': '$AZ_BATCHAI_TASK_INDEX',
                                      '--world-size': 2},
                       compute_target=compute_target,
                       entry_script='train_gloo.py',
                       node_count=2,
                       process_count_per_node=1,
                       distributed_backend='gloo',
                       use_gpu=False)
run = experiment.submit(pt_estimator)
run.wait_for_completion(show_output=True)
print(run.get_metrics())
