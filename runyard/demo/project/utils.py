"""Data helpers for the demo's train.py."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def load_data():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.25, random_state=0)


def accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x) == y))
