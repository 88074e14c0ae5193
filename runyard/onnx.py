"""``runyard.onnx.export(model, sample, path)``: a trained model as an ONNX file, for no-code serving with onnxruntime.

scikit-learn models go through skl2onnx, PyTorch modules through ``torch.onnx.export``, Keras/TensorFlow models
through tf2onnx (``pip install 'runyard[onnx]'``, and tf2onnx for TensorFlow). ``sample``: a batch of inputs (rows of
numbers) that fixes the input's width; the batch dimension stays dynamic.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError


def _need(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"exporting this model to ONNX needs {module}: pip install {extra}") from None


def export(model: Any, sample: Any, path: str | os.PathLike = "model.onnx") -> str:
    """Write ``model`` as ONNX to ``path``; returns the path. The input is named ``input`` (float32, [batch, …])."""
    import numpy as np

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = type(model).__module__.split(".")[0]
    if kind == "sklearn":
        skl2onnx = _need("skl2onnx", "'runyard[onnx]'")
        from skl2onnx.common.data_types import FloatTensorType

        width = np.asarray(sample, dtype=np.float32).shape[1]
        options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, width]))],
                                       options=options)
        out.write_bytes(onx.SerializeToString())
    elif kind == "torch":
        torch = _need("torch", "torch")
        tensor = sample if isinstance(sample, torch.Tensor) else torch.as_tensor(np.asarray(sample, dtype=np.float32))
        model.eval()
        torch.onnx.export(model, (tensor,), str(out), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    elif kind in ("keras", "tensorflow", "tf_keras"):
        tf2onnx = _need("tf2onnx", "tf2onnx")
        import tensorflow as tf

        rows = np.asarray(sample, dtype=np.float32)
        spec = (tf.TensorSpec((None, *rows.shape[1:]), tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, output_path=str(out))
    else:
        raise ConfigError(f"runyard.onnx.export knows scikit-learn, PyTorch and Keras/TensorFlow models, not "
                          f"{type(model).__module__}.{type(model).__name__}; convert it with its own ONNX converter")
    return str(out)
