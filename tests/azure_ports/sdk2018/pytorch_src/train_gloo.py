import argparse
import os

import torch
import torch.distributed as dist
from azureml.core.run import Run

parser = argparse.ArgumentParser()
parser.add_argument('--dist-backend', type=str, default='gloo')
parser.add_argument('--dist-url', type=str)
parser.add_argument('--rank', type=int, default=0)
parser.add_argument('--world-size', type=int, default=1)
args = parser.parse_args()

dist.init_process_group(backend=args.dist_backend, init_method=args.dist_url,
                        rank=args.rank, world_size=args.world_size)
total = torch.tensor([float(args.rank + 1)])
dist.all_reduce(total)
run = Run.get_context()
if args.rank == 0:
    run.log('rank_sum', float(total.item()))
print('rank', args.rank, 'of', args.world_size, 'via', args.dist_url, 'sum', float(total.item()), flush=True)
run.flush()
os._exit(0)  # torch + gloo may abort at interpreter exit; everything is written already
