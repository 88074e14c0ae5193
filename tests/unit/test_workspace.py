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


@pytest.mark.skipif(not shutil.which("setpriv") or os.geteuid() != 0, reason="needs root and setpriv to act as another user")
def test_workspace_without_write_permission(tmp_path):
    """As an unprivileged user (root bypasses permissions), a read-only workspace folder gets a clear error."""
    import tempfile

    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    if subprocess.run([*as_nobody, "-c", "import runyard"], capture_output=True).returncode != 0:
        pytest.skip("this interpreter cannot run as user nobody (installed under a private folder)")

    base = tempfile.mkdtemp(dir="/tmp")  # pytest's own tmp tree is 0700: another user could not reach it
    os.chmod(base, 0o755)
    folder = os.path.join(base, "ro")
    os.mkdir(folder, 0o555)
    code = (
        "from runyard import Workspace\n"
        "from runyard.errors import WorkspaceError\n"
        f"try:\n    Workspace({str(folder)!r})\nexcept WorkspaceError as e:\n    print('ERR', e)\n"
    )
    proc = subprocess.run(
        [*as_nobody, "-c", code],
        capture_output=True, text=True, env={**os.environ, "HOME": base},
    )
    shutil.rmtree(base)
    assert "ERR workspace folder" in proc.stdout and "not writable" in proc.stdout, proc.stdout + proc.stderr


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
