"""Train a two-hidden-layer network on MNIST with TensorFlow (the tf-mnist walkthrough's training script).

    python tf_mnist.py --data-folder DIR --batch-size 50 --first-layer-neurons 300 --second-layer-neurons 100 \
        --learning-rate 0.01 [--epochs 20]

Logs training_acc and validation_acc each epoch and final_acc at the end; saves a SavedModel in outputs/model whose
serving signature takes images (float32, [n, 784], pixels in [0, 1]) and answers the digits.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder', help='the folder of the four MNIST idx files')
parser.add_argument('--batch-size', type=int, dest='batch_size', default=50)
parser.add_argument('--first-layer-neurons', type=int, dest='n_hidden_1', default=100)
parser.add_argument('--second-layer-neurons', type=int, dest='n_hidden_2', default=100)
parser.add_argument('--learning-rate', type=float, dest='learning_rate', default=0.01)
parser.add_argument('--epochs', type=int, dest='n_epochs', default=20)
args = parser.parse_args()

X_train, y_train, X_test, y_test = load_mnist(args.data_folder)
print(f'{len(X_train)} training and {len(X_test)} test images from {args.data_folder}', flush=True)

run = Run.get_context()
tf.random.set_seed(42)


class DigitNet(tf.Module):
    """784 → n_hidden_1 (ReLU) → n_hidden_2 (ReLU) → 10."""

    def __init__(self, sizes):
        super().__init__()
        init = tf.keras.initializers.GlorotUniform(seed=0)
        self.layers = [(tf.Variable(init((a, b)), name=f'w{i}'), tf.Variable(tf.zeros([b]), name=f'b{i}'))
                       for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]

    def logits(self, x):
        for i, (w, b) in enumerate(self.layers):
            x = tf.matmul(x, w) + b
            if i < len(self.layers) - 1:
                x = tf.nn.relu(x)
        return x

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name='images')])
    def predict(self, images):
        return {'digit': tf.argmax(self.logits(images), axis=1)}


net = DigitNet([784, args.n_hidden_1, args.n_hidden_2, 10])
optimizer = tf.keras.optimizers.SGD(learning_rate=args.learning_rate)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = net.logits(x)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))
    return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))


def accuracy(x, y):
    return float(np.mean(net.predict(tf.constant(x))['digit'].numpy() == y))


start = time.perf_counter()
for epoch in range(args.n_epochs):
    order = np.random.default_rng(epoch).permutation(len(X_train))
    correct = []
    for i in range(0, len(order), args.batch_size):
        batch = order[i:i + args.batch_size]
        _, acc = train_step(tf.constant(X_train[batch]), tf.constant(y_train[batch]))
        correct.append(float(acc))
    training_acc, validation_acc = float(np.mean(correct)), accuracy(X_test, y_test)
    run.log('training_acc', training_acc)
    run.log('validation_acc', validation_acc)
    print(f'epoch {epoch}: train accuracy {training_acc:.4f}, validation accuracy {validation_acc:.4f}', flush=True)

final_acc = accuracy(X_test, y_test)
run.log('final_acc', final_acc)
run.log('training_seconds', time.perf_counter() - start)
print('final accuracy', final_acc)

os.makedirs('./outputs/model', exist_ok=True)
tf.saved_model.save(net, './outputs/model', signatures={'serving_default': net.predict})
print('model saved in ./outputs/model')
