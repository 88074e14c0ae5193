"""``SKLearn``: an Estimator whose environment has scikit-learn at ``framework_version`` (Azure ML's
``azureml.train.sklearn.SKLearn``)."""
from __future__ import annotations

from runyard.train.estimator import Estimator


class SKLearn(Estimator):
    """``SKLearn(source_directory="./proj", entry_script="train.py", framework_version="1.9")``."""

    framework_name = "SKLearn"


__all__ = ["SKLearn"]
