import argparse
import os

from mpi4py import MPI
from azureml.core.run import Run

parser = argparse.ArgumentParser()
parser.add_argument('--steps', type=int, default=10)
args = parser.parse_args()

run = Run.get_submitted_run()
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
value = 0.0
for step in range(args.steps):
    value = comm.allreduce(float(rank + step))
    if rank == 0:
        run.log('allreduce', value)
print('rank', rank, 'of', size, 'task', os.environ['AZ_BATCHAI_TASK_INDEX'], 'run', os.environ['AZUREML_RUN_ID'])
