"""Data: datastores (where data lives) and datasets (versioned file lists and tables), consumed by runs."""
from runyard.data.datastore import DataReference, Datastore

__all__ = ["DataReference", "Datastore"]
