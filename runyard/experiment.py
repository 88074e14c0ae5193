"""Experiments: named groups of runs. ``Experiment`` lives beside ``Run`` in ``runyard.run`` (each makes the other)."""
from runyard.run import Experiment

__all__ = ["Experiment"]
