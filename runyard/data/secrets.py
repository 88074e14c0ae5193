"""Secrets given at datastore registration (account keys, secret access keys, SAS tokens), encrypted at rest.

The key is ``RUNYARD_SECRET_KEY`` when set (share it between machines that use one metadata database), else
``<workspace>/secrets.key`` (created on first use, readable by its owner only). The metadata store holds only
ciphertext, so a database dump, a run's details or the studio never show a secret.
"""
from __future__ import annotations

import os
from pathlib import Path

from runyard.errors import ConfigError

KEY_VAR = "RUNYARD_SECRET_KEY"


def _fernet(workspace_path: Path):
    from cryptography.fernet import Fernet

    key = os.environ.get(KEY_VAR)
    if not key:
        path = workspace_path / "secrets.key"
        if not path.exists():  # written whole, then linked into place: a racing process reads a complete key
            tmp = path.with_name(f".secrets.key.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text().strip()
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt(workspace_path: Path, secret: str) -> str:
    return _fernet(workspace_path).encrypt(secret.encode()).decode()


def decrypt(workspace_path: Path, token: str, what: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(workspace_path).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ConfigError(
            f"cannot decrypt the stored secret of {what}: it was encrypted with another key — set {KEY_VAR} to the "
            "key of the machine that registered it (its <workspace>/secrets.key), or register the datastore again"
        ) from None


__all__ = ["KEY_VAR", "decrypt", "encrypt"]
