"""Snapshots: content-addressed, ignore files honoured, unchanged code re-snapshotted by a stat pass."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from runyard.errors import ConfigError
from runyard.store.artifacts import FsspecArtifactStore
from runyard.store import snapshots as snapshot


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "a.py").write_text("same\n")
    (root / "pkg" / "b.py").write_text("same\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    return root


@pytest.fixture
def artifacts(tmp_path):
    return FsspecArtifactStore(str(tmp_path / "artifacts"))


def test_content_addressed_blobs_stored_once(proj, artifacts, tmp_path):
    snap = snapshot.take(proj)
    assert set(snap.files) == {"train.py", "pkg/a.py", "pkg/b.py", "run.sh"}
    assert snap.files["pkg/a.py"][0] == snap.files["pkg/b.py"][0]
    sent = snapshot.store(snap, artifacts)
    blobs = [p for p in (tmp_path / "artifacts" / "snapshots" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 3 and sent == snap.total_bytes - len("same\n")
    assert snapshot.store(snap, artifacts) == 0  # the manifest exists: nothing to send
    assert snapshot.take(proj).id == snap.id  # same content, same id
    (proj / "train.py").write_text("print('changed')\n")
    changed = snapshot.take(proj)
    assert changed.id != snap.id
    assert snapshot.store(changed, artifacts) == len("print('changed')\n")  # only the new blob travels


def test_materialize_restores_files_and_modes(proj, artifacts, tmp_path):
    snap = snapshot.take(proj)
    snapshot.store(snap, artifacts)
    out = tmp_path / "copy"
    assert snapshot.materialize(snap.id, artifacts, out) == 4
    assert (out / "pkg" / "a.py").read_text() == "same\n"
    assert os.access(out / "run.sh", os.X_OK) and not os.access(out / "train.py", os.X_OK)


def test_ignore_files_and_their_precedence(proj):
    (proj / "data").mkdir()
    (proj / "data" / "big.bin").write_bytes(b"x" * 100)
    (proj / "notes.log").write_text("")
    (proj / ".gitignore").write_text("*.log\n")
    (proj / ".git").mkdir()
    (proj / ".git" / "HEAD").write_text("ref")
    (proj / "pkg" / "__pycache__").mkdir()
    (proj / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"")
    files = set(snapshot.take(proj).files)
    assert "notes.log" not in files and "data/big.bin" in files and ".gitignore" in files
    assert not any(f.startswith((".git/", "pkg/__pycache__")) for f in files)
    (proj / ".amlignore").write_text("data/\n")  # .amlignore wins over .gitignore
    files = set(snapshot.take(proj).files)
    assert "data/big.bin" not in files and "notes.log" in files
    (proj / ".runyardignore").write_text("pkg/b.py\n!notes.log\n")  # .runyardignore wins over both
    files = set(snapshot.take(proj).files)
    assert "pkg/b.py" not in files and "data/big.bin" in files and "notes.log" in files


def test_nested_ignore_file_applies_below_its_folder(proj):
    (proj / "pkg" / ".gitignore").write_text("a.py\n")
    (proj / "a.py").write_text("top")
    files = set(snapshot.take(proj).files)
    assert "pkg/a.py" not in files and "a.py" in files and "pkg/b.py" in files


def test_workspace_inside_the_project_is_left_out(proj):
    (proj / "ws" / "artifacts").mkdir(parents=True)
    (proj / "ws" / "runyard.db").write_bytes(b"db")
    assert "ws/runyard.db" not in snapshot.take(proj, exclude=(proj / "ws",)).files


def test_unchanged_files_are_not_read_again(proj, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = snapshot.take(proj, cache_dir=cache)
    hashed = []
    real = snapshot._hash_file
    monkeypatch.setattr(snapshot, "_hash_file", lambda p: hashed.append(p) or real(p))
    assert snapshot.take(proj, cache_dir=cache).id == first.id and hashed == []
    (proj / "pkg" / "a.py").write_text("different length\n")
    snapshot.take(proj, cache_dir=cache)
    assert [os.path.basename(p) for p in hashed] == ["a.py"]


def test_soft_limit_warns_with_the_largest_files(proj, monkeypatch):
    (proj / "weights.bin").write_bytes(b"w" * 300_000)
    monkeypatch.setenv("RUNYARD_SNAPSHOT_WARN_MB", "0.1")
    with pytest.warns(snapshot.SnapshotSizeWarning, match=r"Largest: weights.bin \(0.3 MB\).*\.runyardignore"):
        snapshot.take(proj)
    monkeypatch.setenv("RUNYARD_SNAPSHOT_WARN_MB", "300")
    monkeypatch.setenv("RUNYARD_SNAPSHOT_WARN_FILES", "3")
    with pytest.warns(snapshot.SnapshotSizeWarning, match="holds 5 files"):
        snapshot.take(proj)


def test_dangling_symlink_is_reported_before_anything_is_stored(proj):
    os.symlink(proj / "missing-target", proj / "link.py")
    with pytest.raises(ConfigError, match=r"(?s)cannot read 1 file\(s\).*link.py \(No such file.*\.runyardignore"):
        snapshot.take(proj)


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux) to drop privileges")
def test_unreadable_file_is_reported(proj):
    secret = proj / "secret.key"
    secret.write_text("k")
    os.chmod(secret, 0o000)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    code = f"from runyard.store import snapshots; snapshots.take({str(proj)!r})"
    proc = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "cannot read 1 file(s)" in proc.stderr and "secret.key (Permission denied)" in proc.stderr


@pytest.mark.parametrize("rules", [
    ["*.log", "build/", "__pycache__/"],
    ["/top.txt", "docs/*.md", "**/tmp", "a/**/b", "data"],
    ["*.py[co]", "foo?", "[ab]c", "dir/sub/", "*.log", "!keep.log"],
    ["*", "!*.py", "!*/"],
])
def test_ignore_rules_agree_with_pathspec(tmp_path, rules):
    import pathspec

    root = tmp_path / "tree"
    paths = ["top.txt", "x/top.txt", "docs/a.md", "docs/deep/b.md", "x/docs/c.md", "tmp/t.py", "x/y/tmp/t.py",
             "a/b/f.py", "a/x/y/b/f.py", "data/d.csv", "x/data", "m.pyc", "m.pyo", "m.py", "foo1", "fooba", "ac",
             "bc", "cc", "dir/sub/s.py", "dir/other.py", "x/dir/sub/s.py", "n.log", "keep.log", "x/keep.log",
             "build/out.bin", "x/build/out.bin", "builder.py", "__pycache__/m.pyc", "plain.py", "deep/er/file.txt"]
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text("\n".join(rules) + "\n")
    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    expected = {rel for rel in [*paths, ".gitignore"] if not spec.match_file(rel)}
    ours = set(snapshot.take(root).files)
    ours_without_always_skipped = ours | {p for p in expected if p.startswith("__pycache__/")}
    assert ours_without_always_skipped == expected
