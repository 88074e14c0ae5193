"""The skip guard: a run with an unexpected skip fails; an expected one (no GPU) does not."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def run_pytest(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_x.py").write_text("import pytest\n\n" + body)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "skipguard", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_x.py"), *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def test_an_unexpected_skip_fails_the_run(tmp_path):
    proc = run_pytest(tmp_path, "def test_a():\n    pytest.skip('no chromium (apt-get install chromium)')\n\n"
                                "def test_b():\n    pass\n")
    assert proc.returncode == 1, proc.stdout
    assert "unexpected skips" in proc.stdout and "test_a: no chromium" in proc.stdout
    assert run_pytest(tmp_path, "def test_a():\n    pytest.skip('no chromium')\n", "--allow-skips").returncode == 0


def test_an_expected_skip_passes(tmp_path):
    proc = run_pytest(tmp_path, "def test_gpu():\n    pytest.skip('needs a GPU (nvidia-smi lists none)')\n\n"
                                "def test_b():\n    pass\n")
    assert proc.returncode == 0, proc.stdout
    assert "unexpected skips" not in proc.stdout
