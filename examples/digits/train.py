"""A training script written for runyard: runs unchanged outside it (Run.get_context() is then offline)."""
import argparse
import os
import pickle

import numpy as np
from sklearn.datasets import load_digits

from runyard import Run


def softmax_regression(x, y, classes, lr, epochs, run):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.01, (x.shape[1], classes))
    onehot = np.eye(classes)[y]
    for epoch in range(epochs):
        logits = x @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = float(-np.mean(np.sum(onehot * np.log(p + 1e-12), 1)))
        w -= lr * x.T @ (p - onehot) / len(x)
        run.log("loss", loss)
        run.log_row("progress", epoch=epoch, loss=loss, acc=float(np.mean(p.argmax(1) == y)))
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    run = Run.get_context()
    run.log("lr", args.lr)
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    split = int(0.8 * len(x))
    w = softmax_regression(x[:split], y[:split], 10, args.lr, args.epochs, run)
    pred = (x[split:] @ w).argmax(1)
    acc = float(np.mean(pred == y[split:]))
    run.log("accuracy", acc)
    cm = np.zeros((10, 10), int)
    for t, p in zip(y[split:], pred):
        cm[t, p] += 1
    run.log_table("confusion", {str(c): cm[:, c].tolist() for c in range(10)})
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.pkl", "wb") as f:
        pickle.dump(w, f)
    run.upload_file("outputs/model.pkl", "outputs/model.pkl")
    print(f"accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
