"""Data: datastores (where data lives) and datasets (versioned file lists and tables), consumed by runs."""
from runyard.data.dataset import Dataset, DatasetConsumptionConfig, FileDataset, TabularDataset
from runyard.data.datastore import DataReference, Datastore

__all__ = ["DataReference", "Dataset", "DatasetConsumptionConfig", "Datastore", "FileDataset", "TabularDataset"]
