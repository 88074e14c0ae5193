"""Data: datastores (where data lives) and datasets (versioned file lists and tables), consumed by runs."""
from runyard.data.dataset import Dataset, DatasetConsumptionConfig, FileDataset, TabularDataset
from runyard.config.datapath import DataPath, DataPathComputeBinding
from runyard.data.datastore import DataReference, Datastore

__all__ = ["DataPath", "DataPathComputeBinding", "DataReference", "Dataset", "DatasetConsumptionConfig", "Datastore", "FileDataset", "TabularDataset"]
