"""Between-graph replicated training with parameter servers on MNIST (the tf-parameter-server walkthrough's script).

Each task learns its role from TF_CONFIG, which runyard sets for every process of a ``ps`` job: ps tasks hold the
variables and serve until runyard stops them; workers each run their own copy of the graph, reading and updating the
shared variables asynchronously; worker 0 is the chief (initializes the variables, logs the metrics).

Two ways to read TF_CONFIG: by hand (``json.loads(os.environ["TF_CONFIG"])``, as Azure ML's seed script did), or with
``--use-resolver``, TensorFlow's ``TFConfigClusterResolver``. The graph is TF1's (``tf.compat.v1``: replica device
setter, MonitoredTrainingSession), which TensorFlow 2 still runs.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder')
parser.add_argument('--batch-size', type=int, dest='batch_size', default=50)
parser.add_argument('--learning-rate', type=float, dest='learning_rate', default=0.1)
parser.add_argument('--train-steps', type=int, dest='train_steps', default=4000)
parser.add_argument('--use-resolver', action='store_true', dest='use_resolver',
                    help='read the cluster with TFConfigClusterResolver instead of parsing TF_CONFIG')
args = parser.parse_args()

if args.use_resolver:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster_spec, job_name, task_index = resolver.cluster_spec(), resolver.task_type, resolver.task_id
else:
    tf_config = json.loads(os.environ['TF_CONFIG'])
    cluster_spec = tf.train.ClusterSpec(tf_config['cluster'])
    job_name, task_index = tf_config['task']['type'], int(tf_config['task']['index'])
print(f'{job_name} {task_index} of {json.dumps(cluster_spec.as_dict())}', flush=True)

tf.compat.v1.disable_eager_execution()
server = tf.distribute.Server(cluster_spec, job_name=job_name, task_index=task_index, protocol='grpc', start=True)
if job_name == 'ps':
    server.join()  # serves the variables; runyard stops the ps tasks once every worker has finished

run = Run.get_context()
is_chief = task_index == 0
X_train, y_train, X_test, y_test = load_mnist(args.data_folder)

with tf.compat.v1.device(tf.compat.v1.train.replica_device_setter(worker_device=f'/job:worker/task:{task_index}',
                                                                  cluster=cluster_spec)):
    global_step = tf.compat.v1.train.get_or_create_global_step()
    x = tf.compat.v1.placeholder(tf.float32, [None, 784], name='images')
    y = tf.compat.v1.placeholder(tf.int64, [None], name='labels')
    init = tf.compat.v1.glorot_uniform_initializer(seed=1)
    w1 = tf.compat.v1.get_variable('w1', [784, 128], initializer=init)
    b1 = tf.compat.v1.get_variable('b1', [128], initializer=tf.compat.v1.zeros_initializer())
    w2 = tf.compat.v1.get_variable('w2', [128, 10], initializer=init)
    b2 = tf.compat.v1.get_variable('b2', [10], initializer=tf.compat.v1.zeros_initializer())
    logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
    train_op = tf.compat.v1.train.GradientDescentOptimizer(args.learning_rate).minimize(loss, global_step=global_step)
if not is_chief:  # wait for the chief to initialize the shared variables (polled quickly, not every 30 s)
    uninitialized = tf.compat.v1.report_uninitialized_variables()
    with tf.compat.v1.Session(server.target) as probe:
        while probe.run(uninitialized).size:
            time.sleep(0.2)

rng = np.random.default_rng(task_index)
local_steps, started = 0, time.perf_counter()
hooks = [tf.compat.v1.train.StopAtStepHook(last_step=args.train_steps)]
with tf.compat.v1.train.MonitoredTrainingSession(master=server.target, is_chief=is_chief, hooks=hooks,
                                                 log_step_count_steps=None) as sess:
    while not sess.should_stop():
        batch = rng.choice(len(X_train), args.batch_size, replace=False)
        _, step, batch_loss = sess.run([train_op, global_step, loss], {x: X_train[batch], y: y_train[batch]})
        local_steps += 1
        if is_chief and local_steps % 200 == 0:
            run.log('loss', float(batch_loss))
            print(f'global step {step}: loss {batch_loss:.4f}', flush=True)

run.log('local_steps', local_steps)  # each worker's share of the global steps (worker 1's as local_steps/rank1)
print(f'worker {task_index}: {local_steps} of {args.train_steps} steps in {time.perf_counter() - started:.1f} s',
      flush=True)
if is_chief:  # the shared variables, read back from the ps
    with tf.compat.v1.Session(server.target) as s:
        final_acc, weights = s.run([accuracy, [w1, b1, w2, b2]], {x: X_test, y: y_test})
    run.log('final_acc', float(final_acc))
    print('final accuracy', final_acc, flush=True)
    os.makedirs('./outputs', exist_ok=True)
    np.savez('./outputs/weights.npz', w1=weights[0], b1=weights[1], w2=weights[2], b2=weights[3])
