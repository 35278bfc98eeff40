"""Which pickle-based files this machine's nnc4rl wrote: a keyed hash (HMAC-SHA256) of each.

``model.zip`` (SB3's cloudpickle format) and ``checkpoint.pkl`` run any code they hold when
loaded, so a file of unknown origin must never be unpickled. Every such file nnc4rl writes is
signed with a secret key that never leaves this machine's user account (``$NNC4RL_SECRET``,
default ``~/.config/nnc4rl/secret``, created once, mode 0600): a file whose signature checks was
written here, by this user; one from anyone else (a download, another user, a crafted file) has
no valid signature and is refused before it is unpickled. The signature is a keyed hash, not a
plain one, so whoever crafts a file cannot compute it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

SIGNATURE_SUFFIX = ".sig"  # model.zip -> model.zip.sig beside it


def secret_path() -> Path:
    """The key file: ``$NNC4RL_SECRET``, else ``$XDG_CONFIG_HOME/nnc4rl/secret`` (default
    ``~/.config``)."""
    if os.environ.get("NNC4RL_SECRET"):
        return Path(os.environ["NNC4RL_SECRET"])
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "nnc4rl" / "secret"


def secret_key() -> bytes:
    """This user's signing key (32 random bytes, hex in the key file), created on first use."""
    path = secret_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):  # two at once: the first link wins
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())


def signature(data: bytes) -> str:
    """The hex HMAC-SHA256 of ``data`` under :func:`secret_key`."""
    return hmac.new(secret_key(), data, hashlib.sha256).hexdigest()


def is_signed(data: bytes, sig: str) -> bool:
    """Whether ``sig`` is this user's signature of ``data`` (constant-time comparison)."""
    return hmac.compare_digest(signature(data), sig.strip())


def signature_file(path: str | Path) -> Path:
    """Where the signature of the file ``path`` lives: ``<path>.sig`` beside it."""
    path = Path(path)
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def sign_file(path: str | Path) -> Path:
    """Write the signature of the file ``path`` beside it; returns the signature file."""
    from nnc4rl.core.atomic import write_atomic

    sig = signature_file(path)
    write_atomic(sig, signature(Path(path).read_bytes()) + "\n")
    return sig


def file_is_signed(path: str | Path) -> bool:
    """Whether the file ``path`` has a valid signature beside it (written by :func:`sign_file`)."""
    try:
        return is_signed(Path(path).read_bytes(), signature_file(path).read_text())
    except (OSError, UnicodeDecodeError):
        return False
