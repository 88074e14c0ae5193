import math

import numpy as np
import pytest

from runyard import validation
from runyard.errors import ValidationError


@pytest.mark.parametrize("name", ["digits", "tf-mnist", "a.b_c-1", "X" * 255])
def test_good_experiment_names(name):
    assert validation.experiment_name(name) == name


@pytest.mark.parametrize("name,fragment", [
    ("", "non-empty"), ("   ", "non-empty"), ("a/b", "no '/'"), ("has space", "invalid experiment name"),
    ("-lead", "starting with a letter"), ("X" * 256, "limit is 255"), (None, "non-empty"),
])
def test_bad_experiment_names_say_why(name, fragment):
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        validation.experiment_name(name)


def test_bad_experiment_name_suggests_a_fix():
    with pytest.raises(ValidationError, match="'my-exp'"):
        validation.experiment_name("my/exp")


@pytest.mark.parametrize("value,expected", [
    (1, 1), (1.5, 1.5), (True, True), ("text", "text"),
    (np.float32(0.5), 0.5), (np.float64(2.0), 2.0), (np.int64(7), 7), (np.bool_(True), True), (np.array(3.0), 3.0),
])
def test_metric_values_accept_numbers_and_strings(value, expected):
    out = validation.metric_value("m", value)
    assert out == expected and type(out) is type(expected)


def test_nan_and_inf_are_kept():
    assert math.isnan(validation.metric_value("m", float("nan")))
    assert validation.metric_value("m", float("-inf")) == float("-inf")
    assert math.isnan(validation.metric_value("m", np.float32("nan")))


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, None, object(), b"bytes", np.array([1.0, 2.0])])
def test_metric_values_refuse_non_scalars_with_a_hint(value):
    with pytest.raises(ValidationError, match="not a number or a string"):
        validation.metric_value("m", value)


def test_oversized_metric_string_is_refused():
    with pytest.raises(ValidationError, match="limit is 8192.*upload_file"):
        validation.metric_value("m", "x" * 8193)
    assert validation.metric_value("m", "x" * 8192) == "x" * 8192


@pytest.mark.parametrize("name", ["loss", "val loss", "acc@5", "top-1/acc", "ünïcode"])
def test_metric_names_allow_spaces_and_at(name):
    assert validation.key(name) == name


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 256, 3])
def test_bad_metric_names(name):
    with pytest.raises(ValidationError):
        validation.key(name)


@pytest.mark.parametrize("name,expected", [
    ("outputs/m.pkl", "outputs/m.pkl"), ("./outputs//m.pkl", "outputs/m.pkl"), ("a\\b.txt", "a/b.txt"),
    ("with space/f @1.txt", "with space/f @1.txt"),
])
def test_artifact_paths_are_normalised(name, expected):
    assert validation.artifact_path(name) == expected


@pytest.mark.parametrize("name,fragment", [
    ("../x", "'..'"), ("outputs/../../x", "'..'"), ("/etc/passwd", "absolute"), ("C:/x", "absolute"),
    ("s3://b/k", "absolute"), ("", "non-empty"), (".", "names no file"), ("a\x00b", "NUL"),
])
def test_artifact_paths_cannot_escape(name, fragment):
    with pytest.raises(ValidationError, match=fragment):
        validation.artifact_path(name)


def test_tables_and_rows():
    assert validation.table("t", {"a": [1, np.int64(2)], "b": ["x", "y"]}) == {"a": [1, 2], "b": ["x", "y"]}
    assert validation.row("r", {"epoch": 1, "acc": np.float64(0.5)}) == {"epoch": 1, "acc": 0.5}
    with pytest.raises(ValidationError, match="keyword arguments"):
        validation.row("r", {})
    with pytest.raises(ValidationError, match="non-empty dict"):
        validation.table("t", [1, 2])
