"""CURVE key pairs for live mode: one Z85 pair per node, ``<node>.key`` (public, mode 0644)
and ``<node>.key_secret`` (public and secret, mode 0600) in one folder (mode 0700), in the
certificate format of ``zmq.auth.load_certificate``. Each file is written atomically: to a
temporary file of the final mode in the same folder, then renamed."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

import zmq
import zmq.auth

_BANNER = "#   ZeroMQ CURVE {} Certificate, written by simnet\n\n"


def _path(folder: Path, node: str, suffix: str) -> Path:
    path = Path(folder) / f"{node}{suffix}"
    if not path.is_file():
        raise ValueError(f"no CURVE key for node {node!r}: {path} is missing")
    return path


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically, the file having ``mode`` from its creation."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600 with O_EXCL; only ever widened to 0644
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _certificate(kind: str, public: bytes, secret: bytes | None = None) -> str:
    text = _BANNER.format(kind) + f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    return text + (f'    secret-key = "{secret.decode()}"\n' if secret else "")


def write_keys(folder: Path, node_ids: Iterable[str]) -> None:
    """Write a fresh key pair for each node into ``folder`` (created mode 0700 if needed,
    tightened to 0700 if it exists and belongs to this user)."""
    folder = Path(folder)
    nodes = list(node_ids)
    for node in nodes:
        if not node or node.startswith(".") or Path(node).name != node:
            raise ValueError(f"node id {node!r} cannot name a key file")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(0o700)
    for node in nodes:
        public, secret = zmq.curve_keypair()
        _write(folder / f"{node}.key_secret", _certificate("**Secret**", public, secret), 0o600)
        _write(folder / f"{node}.key", _certificate("Public", public), 0o644)


def _load(path: Path) -> tuple[bytes, bytes | None]:
    """The Z85 keys in a certificate; ``ValueError`` naming the file if they are bad."""
    public, secret = zmq.auth.load_certificate(path)
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise ValueError(f"{path}: not a CURVE certificate (keys must be 40 Z85 characters)")
    return public, secret


def load_public(folder: Path, node: str) -> bytes:
    """The node's Z85 public key."""
    return _load(_path(folder, node, ".key"))[0]


def load_secret(folder: Path, node: str) -> tuple[bytes, bytes]:
    """The node's Z85 ``(public, secret)`` key pair; ``ValueError`` if the file is missing,
    holds no secret, or is readable by group or others (like ssh, it must be mode 0600)."""
    path = _path(folder, node, ".key_secret")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} is accessible by others (mode {mode:04o}): run chmod 600 {path}")
    public, secret = _load(path)
    if secret is None:
        raise ValueError(f"no secret key in {path}")
    return public, secret


def public_keys(folder: Path) -> dict[bytes, str]:
    """Z85 public key -> node id, from every ``*.key`` file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"CURVE key folder {folder} is missing")
    return {load_public(folder, path.stem): path.stem for path in sorted(folder.glob("*.key"))}
