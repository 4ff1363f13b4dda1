"""CURVE key pairs for live mode: one Z85 pair per node, ``<node>.key`` (public) and
``<node>.key_secret`` (public and secret) in one folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import zmq.auth


def _path(folder: Path, node: str, suffix: str) -> Path:
    path = Path(folder) / f"{node}{suffix}"
    if not path.is_file():
        raise ValueError(f"no CURVE key for node {node!r}: {path} is missing")
    return path


def write_keys(folder: Path, node_ids: Iterable[str]) -> None:
    """Write a fresh key pair for each node into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for node in node_ids:
        if not node or node.startswith(".") or Path(node).name != node:
            raise ValueError(f"node id {node!r} cannot name a key file")
        zmq.auth.create_certificates(folder, node)


def load_public(folder: Path, node: str) -> bytes:
    """The node's Z85 public key."""
    public, _ = zmq.auth.load_certificate(_path(folder, node, ".key"))
    return public


def load_secret(folder: Path, node: str) -> tuple[bytes, bytes]:
    """The node's Z85 ``(public, secret)`` key pair."""
    path = _path(folder, node, ".key_secret")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise ValueError(f"no secret key in {path}")
    return public, secret


def public_keys(folder: Path) -> dict[bytes, str]:
    """Z85 public key -> node id, from every ``*.key`` file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"CURVE key folder {folder} is missing")
    return {load_public(folder, path.stem): path.stem for path in sorted(folder.glob("*.key"))}
