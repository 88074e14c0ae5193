import pytest

from runyard import RunStatus
from runyard.errors import ValidationError
from runyard.run import shape_metrics


def test_terminal_statuses():
    assert {s for s in RunStatus if s.is_terminal()} == {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}
    assert str(RunStatus.CANCEL_REQUESTED) == "CancelRequested"


def test_parse_accepts_value_name_and_case():
    assert RunStatus.parse("Completed") is RunStatus.COMPLETED
    assert RunStatus.parse("COMPLETED") is RunStatus.COMPLETED
    assert RunStatus.parse("running") is RunStatus.RUNNING
    with pytest.raises(ValidationError, match="expected one of"):
        RunStatus.parse("Done")


def test_shape_scalar_once_list_when_repeated():
    records = [("lr", 0.1, "scalar"), ("loss", 3, "scalar"), ("loss", 2, "scalar"), ("acc", 0.5, "list")]
    assert shape_metrics(records) == {"lr": 0.1, "loss": [3, 2], "acc": [0.5]}


def test_shape_rows_become_aligned_columns():
    rows = [("t", {"epoch": 1, "acc": 0.5}, "row"), ("t", {"epoch": 2}, "row"), ("t", {"epoch": 3, "f1": 0.2}, "row")]
    assert shape_metrics(rows) == {"t": {"epoch": [1, 2, 3], "acc": [0.5, None, None], "f1": [None, None, 0.2]}}


def test_shape_table_keeps_last_and_images_are_paths():
    records = [("cm", {"a": [1]}, "table"), ("cm", {"a": [2]}, "table"), ("roc", "images/roc.png", "image")]
    assert shape_metrics(records) == {"cm": {"a": [2]}, "roc": "images/roc.png"}
