"""Data-parallel MNIST training under MPI, the Horovod way (the tf-distributed-mpi walkthrough's training script).

Every rank trains the same network on its own shard of the data; after each batch the ranks' gradients are averaged
with an allreduce, so their weights stay equal. With Horovod installed (``horovod.tensorflow``) Horovod does the
allreduce; without it — Horovod has no TensorFlow wheels for current releases — the same steps are done with mpi4py
(the ranks' gradients summed with ``MPI.Allreduce`` and divided by the number of ranks; rank 0's initial weights
broadcast to all), which is what Horovod's ``DistributedGradientTape`` and ``broadcast_variables`` do.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder')
parser.add_argument('--batch-size', type=int, dest='batch_size', default=50)
parser.add_argument('--learning-rate', type=float, dest='learning_rate', default=0.05)
parser.add_argument('--epochs', type=int, dest='n_epochs', default=5)
args = parser.parse_args()

try:
    import horovod.tensorflow as hvd

    hvd.init()
    backend, rank, size = 'horovod', hvd.rank(), hvd.size()

    def average(arrays):
        return [hvd.allreduce(a, op=hvd.Average).numpy() for a in arrays]

    def broadcast(arrays):
        return [hvd.broadcast(a, root_rank=0).numpy() for a in arrays]
except ImportError:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    backend, rank, size = 'mpi4py', comm.Get_rank(), comm.Get_size()

    def _flat(arrays):
        return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])

    def _split(flat, like):
        out, at = [], 0
        for a in like:
            out.append(flat[at:at + a.size].reshape(a.shape))
            at += a.size
        return out

    def average(arrays):
        flat = _flat(arrays)
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        return _split(flat / size, [np.asarray(a) for a in arrays])

    def broadcast(arrays):
        flat = _flat(arrays)
        comm.Bcast(flat, root=0)
        return _split(flat, [np.asarray(a) for a in arrays])

run = Run.get_context()
X_train, y_train, X_test, y_test = load_mnist(args.data_folder)
X_shard, y_shard = X_train[rank::size], y_train[rank::size]  # each rank its own part of the data
print(f'rank {rank} of {size} ({backend}): {len(X_shard)} training images', flush=True)

tf.random.set_seed(rank)  # different on purpose: the broadcast below makes the weights equal
model = tf.keras.Sequential([tf.keras.Input(shape=(784,)), tf.keras.layers.Dense(128, activation='relu'),
                             tf.keras.layers.Dense(10)])
for var, value in zip(model.trainable_variables, broadcast([v.numpy() for v in model.trainable_variables])):
    var.assign(value)
optimizer = tf.keras.optimizers.SGD(learning_rate=args.learning_rate * size)  # scaled with the ranks, as Horovod advises
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def gradients(x, y):
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    return loss, tape.gradient(loss, model.trainable_variables)


steps = len(X_shard) // args.batch_size
for epoch in range(args.n_epochs):
    order = np.random.default_rng(1000 * epoch + rank).permutation(len(X_shard))
    losses = []
    for step in range(steps):
        batch = order[step * args.batch_size:(step + 1) * args.batch_size]
        loss, grads = gradients(tf.constant(X_shard[batch]), tf.constant(y_shard[batch]))
        optimizer.apply_gradients(zip(average([g.numpy() for g in grads]), model.trainable_variables))
        losses.append(float(loss))
    accuracy = float(np.mean(np.argmax(model(X_test).numpy(), 1) == y_test))
    if rank == 0:
        run.log('loss', float(np.mean(losses)))
        run.log('validation_acc', accuracy)
    print(f'rank {rank} epoch {epoch}: loss {np.mean(losses):.4f} accuracy {accuracy:.4f}', flush=True)

# Every rank must end with the same weights: compare each rank's checksum with the average of all of them.
checksum = float(sum(np.abs(v.numpy()).sum() for v in model.trainable_variables))
mean_checksum = float(average([np.array([checksum], dtype=np.float32)])[0][0])
in_sync = abs(checksum - mean_checksum) <= 1e-3 * abs(checksum)
print(f'rank {rank}: weights checksum {checksum:.3f}, in sync {in_sync}', flush=True)
if rank == 0:
    run.log('final_acc', accuracy)
    run.log('ranks', size)
    run.log('weights_in_sync', int(in_sync))
    run.tag('allreduce', backend)
    os.makedirs('./outputs/model', exist_ok=True)
    model.save('./outputs/model/model.keras')
