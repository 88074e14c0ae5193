import json
import os
import shutil
import subprocess
import sys

import pytest

from runyard import Workspace
from runyard.errors import ConfigError, WorkspaceError


def test_default_workspace_is_runyard_home_created(tmp_path, monkeypatch):
    home = tmp_path / "custom-home"
    monkeypatch.setenv("RUNYARD_HOME", str(home))
    ws = Workspace.from_config()
    assert ws.path == home and (home / "config.json").is_file()
    assert ws.tracking_uri == f"sqlite:///{home / 'runyard.db'}"
    assert ws.artifact_uri == str(home / "artifacts")


def test_falls_back_to_home_dot_runyard(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNYARD_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Workspace.from_config().path == tmp_path / "user" / ".runyard"


def test_nearest_config_upward_wins(tmp_path, monkeypatch):
    Workspace.create(tmp_path / "proj")
    deep = tmp_path / "proj" / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    ws = Workspace.from_config()
    assert ws.path == tmp_path / "proj" / ".runyard" and ws.name == "proj"
    assert Workspace.from_config(deep).path == ws.path
    assert Workspace.from_config(tmp_path / "proj" / ".runyard" / "config.json").path == ws.path


def test_explicit_path_without_config_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="runyard init"):
        Workspace.from_config(tmp_path / "empty")


def test_config_uris_relative_to_the_workspace(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"tracking_uri": "sqlite:///meta/db.sqlite", "artifact_uri": "files"}))
    ws = Workspace(folder)
    assert ws.tracking_uri == f"sqlite:///{folder / 'meta' / 'db.sqlite'}"
    assert ws.artifact_uri == str(folder / "files")


def test_broken_config_is_reported(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read workspace config"):
        Workspace(folder)


def test_workspace_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WorkspaceError, match="cannot create workspace folder .*RUNYARD_HOME"):
        Workspace(tmp_path / "afile" / "ws")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux) to drop privileges")
def test_workspace_without_write_permission(tmp_path):
    """A read-only workspace folder gets a clear error. Root ignores permissions, so the child process runs
    without the capabilities that let it (CAP_DAC_OVERRIDE/READ_SEARCH) — the same rules a normal user meets."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code = (
        "from runyard import Workspace\n"
        "from runyard.errors import WorkspaceError\n"
        f"try:\n    Workspace({str(folder)!r})\nexcept WorkspaceError as e:\n    print('ERR', e)\n"
    )
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    proc = subprocess.run([*(drop if os.geteuid() == 0 else []), sys.executable, "-c", code], capture_output=True, text=True)
    folder.chmod(0o755)
    assert "ERR workspace folder" in proc.stdout and "not writable" in proc.stdout, proc.stdout + proc.stderr
    assert not (folder / "config.json").exists()


def test_runyard_uri_names_a_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_TRACKING_URI", f"runyard://{tmp_path / 'env-ws'}")
    assert Workspace.from_environment().path == tmp_path / "env-ws"


def test_write_config_points_a_project_at_this_workspace(tmp_path, monkeypatch):
    shared = Workspace(tmp_path / "shared")
    shared.write_config(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    ws = Workspace.from_config()
    assert ws.tracking_uri == shared.tracking_uri and ws.artifact_uri == shared.artifact_uri


def test_create_again_changes_only_what_is_given(tmp_path):
    Workspace.create(tmp_path / "p", artifact_uri="/data/shared-artifacts")
    ws = Workspace.create(tmp_path / "p", tracking_uri="sqlite:////data/shared.db")
    assert ws.artifact_uri == "/data/shared-artifacts" and ws.tracking_uri == "sqlite:////data/shared.db"
    with pytest.raises(ConfigError, match="already exists"):
        Workspace.create(tmp_path / "p", exist_ok=False)
