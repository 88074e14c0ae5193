"""Distributed data-parallel MNIST with PyTorch (the pytorch-ddp walkthrough's training script).

runyard's PyTorch launcher sets what torchrun sets (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK), so the script
starts its process group from the environment. Each rank trains on its own shard; DistributedDataParallel averages
the gradients, so the ranks' weights stay equal. Rank 0 logs the metrics and saves a TorchScript model.
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder')
parser.add_argument('--batch-size', type=int, dest='batch_size', default=64)
parser.add_argument('--learning-rate', type=float, dest='learning_rate', default=0.05)
parser.add_argument('--epochs', type=int, dest='epochs', default=3)
args = parser.parse_args()

dist.init_process_group(backend=os.environ.get('RUNYARD_COMMUNICATION_BACKEND', 'gloo'))
rank, world = dist.get_rank(), dist.get_world_size()
torch.set_num_threads(1)
run = Run.get_context()

X_train, y_train, X_test, y_test = load_mnist(args.data_folder)
X_shard, y_shard = torch.from_numpy(X_train[rank::world]), torch.from_numpy(y_train[rank::world])
print(f'rank {rank}/{world} on node {os.environ.get("NODE_RANK")} ({os.uname().nodename}): '
      f'{len(X_shard)} images', flush=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


torch.manual_seed(0)
model = DistributedDataParallel(Net())
optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
started = time.perf_counter()
for epoch in range(args.epochs):
    order = torch.from_numpy(np.random.default_rng(100 * epoch + rank).permutation(len(X_shard)))
    losses = []
    for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
        batch = order[i:i + args.batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X_shard[batch]), y_shard[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
    if rank == 0:
        run.log('loss', float(np.mean(losses)))
        run.log('validation_acc', float(accuracy))
    print(f'rank {rank} epoch {epoch}: loss {np.mean(losses):.4f} accuracy {accuracy:.4f}', flush=True)

# The ranks' weights are equal: gather each rank's flattened weights and compare them.
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
in_sync = all(torch.equal(gathered[0], g) for g in gathered)
print(f'rank {rank}: weights equal on all ranks: {in_sync}', flush=True)
if rank == 0:
    run.log('final_acc', float(accuracy))
    run.log('world_size', world)
    run.log('weights_in_sync', int(in_sync))
    run.log('training_seconds', time.perf_counter() - started)
    os.makedirs('outputs', exist_ok=True)
    torch.jit.save(torch.jit.script(model.module), 'outputs/model.pt')
run.flush()
dist.barrier()
dist.destroy_process_group()
os._exit(0)  # torch + gloo can abort at interpreter exit; everything is written already
