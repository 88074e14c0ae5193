"""Train a linear classifier on scikit-learn's bundled digits (8x8 images), logging into the runyard run.

Runs anywhere: under runyard, Run.get_context() is the submitted run; elsewhere an offline run that prints.
"""
import argparse
import os
import pickle

from runyard import Run
from utils import load_data, accuracy  # lives next to this script: the snapshot's root is on sys.path

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--learning-rate", type=float, default=0.01)
parser.add_argument("--alpha", type=float, default=1e-4)
args = parser.parse_args()

from sklearn.linear_model import SGDClassifier  # noqa: E402

run = Run.get_context()
run.log("learning_rate", args.learning_rate)
x_train, x_test, y_train, y_test = load_data()
print(f"digits: {len(x_train)} training and {len(x_test)} test images")

model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.learning_rate, alpha=args.alpha, random_state=0)
classes = sorted(set(y_train))
for epoch in range(1, args.epochs + 1):
    model.partial_fit(x_train, y_train, classes=classes)
    train_acc, test_acc = accuracy(model, x_train, y_train), accuracy(model, x_test, y_test)
    run.log("training_acc", train_acc)
    run.log("validation_acc", test_acc)
    run.log_row("epochs", epoch=epoch, training_acc=train_acc, validation_acc=test_acc)
    print(f"epoch {epoch:2d}: training accuracy {train_acc:.3f}, validation accuracy {test_acc:.3f}")

run.log("final_acc", test_acc)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as f:
    pickle.dump(model, f)
print("saved outputs/model.pkl")
