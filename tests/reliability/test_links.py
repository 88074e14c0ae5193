"""Paths that leave their folder (issue 21 §7): a snapshot or an outputs/ upload never carries files from elsewhere."""
from __future__ import annotations

import os

import pytest

from runyard import ConfigError, Experiment, ScriptRunConfig

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "id_rsa").write_text("PRIVATE KEY")
    return secret


def _project(tmp_path):
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (root / "train.py").write_text("import os\nfrom pkg.util import X\nprint('X', X)\n")
    os.symlink("pkg/util.py", root / "alias.py")  # links inside the folder keep working
    os.symlink("pkg", root / "lib")
    return root


@pytest.mark.parametrize("link", ["absolute file", "relative file", "folder"])
def test_a_link_out_of_the_source_directory_is_refused_before_anything_runs(workspace, tmp_path, outside, link):
    root = _project(tmp_path)
    if link == "absolute file":
        os.symlink(outside / "id_rsa", root / "key")
        named = "key → "
    elif link == "relative file":
        os.symlink("../../elsewhere/id_rsa", root / "pkg" / "key")
        named = "pkg/key → "
    else:
        os.symlink("../elsewhere", root / "data")
        named = "data → "
    exp = Experiment(workspace, "links")
    with pytest.raises(ConfigError, match="point outside it") as refused:
        exp.submit(ScriptRunConfig(str(root), "train.py"))
    assert named + str(outside) in str(refused.value)
    assert list(exp.get_runs()) == []  # refused before a run was made
    (root / ".runyardignore").write_text("key\npkg/key\ndata\n")  # ignoring the link is one way out
    run = exp.submit(ScriptRunConfig(str(root), "train.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    snapshot = tmp_path / "snap"
    run.restore_snapshot(path=str(snapshot))
    assert (snapshot / "alias.py").read_text() == "X = 1\n" and (snapshot / "lib" / "util.py").exists()
    assert "PRIVATE KEY" not in "".join(p.read_text() for p in snapshot.rglob("*") if p.is_file())


def test_an_outputs_link_out_of_the_folder_is_not_uploaded(workspace, tmp_path, outside):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(
        "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('weights')\n"
        "os.symlink('model.txt', 'outputs/latest.txt')\n"
        f"os.symlink({str(outside / 'id_rsa')!r}, 'outputs/leak.txt')\n")
    run = Experiment(workspace, "links").submit(ScriptRunConfig(str(root), "train.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "outputs/latest.txt" in names and "outputs/leak.txt" not in names
    log = tmp_path / "supervisor.txt"
    run.download_file("logs/runyard/supervisor.txt", str(log))
    assert f"leak.txt is a link to {outside / 'id_rsa'}" in log.read_text()
    # Run.upload_folder refuses such a link with the same message.
    folder = tmp_path / "up"
    folder.mkdir()
    os.symlink(outside / "id_rsa", folder / "leak.txt")
    other = Experiment(workspace, "links").start_logging(outputs=False)
    with pytest.raises(ConfigError, match="leak.txt is a link to .* outside"):
        other.upload_folder("stuff", folder)
    other.complete()
