"""Logistic regression on MNIST with scikit-learn (the sklearn walkthrough's training script).

    python train_sklearn.py --data-folder DIR --regularization 0.8

Fits step by step (warm starts of a few solver iterations each), logging accuracy and loss per step to the run and,
as TensorBoard event files, to ./logs (the run keeps ./logs: `runyard tensorboard RUN` shows them). Saves the model
to ./outputs/sklearn_mnist_model.pkl.
"""
import argparse
import os
import time
import warnings

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder', help='data folder mounting point')
parser.add_argument('--regularization', type=float, dest='reg', default=0.01, help='regularization rate')
parser.add_argument('--steps', type=int, default=8, help='fitting steps (each a few solver iterations)')
args = parser.parse_args()

X_train, y_train, X_test, y_test = load_mnist(args.data_folder)
print(X_train.shape, y_train.shape, X_test.shape, y_test.shape, sep='\n')

run = Run.get_context()
run.log('regularization rate', float(args.reg))
writer = EventFileWriter('./logs')


def scalar(tag, value, step):
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


print('Train a logistic regression model with regularization rate of', args.reg)
clf = LogisticRegression(C=1.0 / args.reg, solver='lbfgs', max_iter=5, warm_start=True, random_state=42)
warnings.simplefilter('ignore', ConvergenceWarning)  # a few iterations per step, on purpose
for step in range(1, args.steps + 1):
    clf.fit(X_train, y_train)
    acc = float(np.mean(clf.predict(X_test) == y_test))
    loss = float(log_loss(y_test, clf.predict_proba(X_test), labels=clf.classes_))
    run.log('accuracy', acc)
    run.log('loss', loss)
    scalar('accuracy', acc, step)
    scalar('loss', loss, step)
    print(f'step {step}: accuracy {acc:.4f}, loss {loss:.4f}', flush=True)
writer.close()

os.makedirs('outputs', exist_ok=True)
joblib.dump(value=clf, filename='outputs/sklearn_mnist_model.pkl')
print('accuracy', acc)
