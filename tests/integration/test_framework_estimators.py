"""TensorFlow and PyTorch estimators for real: their environments are built from local package sources and a
tiny model trains on the CPU, logging into the run."""
from __future__ import annotations

import textwrap

import pytest

from runyard import Experiment, Workspace
from runyard.compute import get_target

pytestmark = [pytest.mark.integration]


@pytest.fixture
def ws(tmp_path, local_packages):
    return Workspace(tmp_path / "ws")


@pytest.mark.tf
def test_tensorflow_estimator_trains_on_cpu(ws, tmp_path):
    from runyard.train.dnn import TensorFlow

    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "train.py").write_text(textwrap.dedent("""
        import argparse, numpy as np, tensorflow as tf
        from runyard import Run
        p = argparse.ArgumentParser(); p.add_argument("--epochs", type=int); args = p.parse_args()
        run = Run.get_context()
        rng = np.random.default_rng(0)
        x = rng.random((512, 4)).astype("float32"); y = (x[:, 0] > 0.5).astype("float32")
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(16, activation="relu"),
                                     tf.keras.layers.Dense(1, activation="sigmoid")])
        model.compile(tf.keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=args.epochs, batch_size=64, verbose=0)
        for acc in history.history["accuracy"]:
            run.log("training_acc", float(acc))
        print("tensorflow", tf.__version__, "devices", [d.device_type for d in tf.config.list_logical_devices()])
        # What Azure's TensorFlow image had: tf.summary needs TensorBoard; the scientific stack is there.
        writer = tf.summary.create_file_writer("logs/train")
        with writer.as_default():
            for step, acc in enumerate(history.history["accuracy"]):
                tf.summary.scalar("accuracy", acc, step=step)
        writer.flush()
        import pandas, scipy, sklearn, matplotlib, PIL
        print("stack", all(m.__version__ for m in (pandas, scipy, sklearn, matplotlib, PIL)))
    """))
    est = TensorFlow(tmp_path / "tf", entry_script="train.py", script_params={"--epochs": 8}, framework_version="2.21",
                     environment_variables={"TF_CPP_MIN_LOG_LEVEL": "2"})
    run = Experiment(ws, "tf").submit(est)
    assert run.wait_for_completion()["status"] == "Completed"
    log = "".join(get_target(ws, "local").log_iter(run.id))
    assert "tensorflow 2.21." in log and "devices ['CPU']" in log
    acc = run.get_metrics()["training_acc"]
    assert len(acc) == 8 and acc[-1] > 0.8  # it learned
    assert "tensorflow-cpu==2.21.*" in "".join(get_target(ws, "local").build_log_iter(run.id))
    assert "stack True" in log and any(n.startswith("logs/train/events.out.tfevents") for n in run.get_file_names())


@pytest.mark.torch
def test_pytorch_estimator_trains_on_cpu_with_the_local_cpu_wheel(ws, tmp_path, local_packages):
    from runyard.config.package_index import local_wheels
    from runyard.train.dnn import PyTorch

    if not any(v.startswith("2.13.") and v.endswith("+cpu") for v, _ in local_wheels("torch", local_packages)):
        pytest.skip("no local CPU wheel of torch 2.13 in pip's find-links")
    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "train.py").write_text(textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")  # torch warns "Failed to initialize NumPy" where numpy is missing
        import numpy as np
        import torch
        from torch.utils.tensorboard import SummaryWriter
        from runyard import Run
        run = Run.get_context()
        print("from numpy", torch.from_numpy(np.arange(3)).tolist())
        torch.manual_seed(0)
        x = torch.rand(512, 4); y = (x[:, :1] > 0.5).float()
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for step in range(60):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            loss.backward(); opt.step()
            run.log("loss", loss.item())
        print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "device", next(model.parameters()).device)
        writer = SummaryWriter("logs/pt")
        writer.add_scalar("loss", loss.item(), 60)
        writer.close()
    """))
    run = Experiment(ws, "pt").submit(PyTorch(tmp_path / "pt", entry_script="train.py", framework_version="2.13"))
    assert run.wait_for_completion()["status"] == "Completed"
    log = "".join(get_target(ws, "local").log_iter(run.id))
    assert "torch 2.13.0+cpu cuda False device cpu" in log  # the CPU build from disk, not a CUDA download
    assert "from numpy [0, 1, 2]" in log and "Failed to initialize NumPy" not in log
    assert any(n.startswith("logs/pt/events.out.tfevents") for n in run.get_file_names())
    loss = run.get_metrics()["loss"]
    assert len(loss) == 60 and loss[-1] < loss[0] / 2
