"""CURVE key files: private modes from creation, atomic writes, refusal of exposed secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth

from simnet.live import keys
from simnet.live.keys import load_public, load_secret, public_keys, write_keys


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_of_the_folder_and_the_files(tmp_path: Path) -> None:
    old = os.umask(0)  # the modes must not come from the umask
    try:
        write_keys(tmp_path / "new" / "k", ["a", "b"])
    finally:
        os.umask(old)
    folder = tmp_path / "new" / "k"
    assert mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        "a.key": 0o644, "a.key_secret": 0o600, "b.key": 0o644, "b.key_secret": 0o600,
    }  # fmt: skip
    open_folder = tmp_path / "open"
    open_folder.mkdir(mode=0o755)
    open_folder.chmod(0o755)
    write_keys(open_folder, ["c"])
    assert mode(open_folder) == 0o700


def test_round_trip_in_pyzmq_format(tmp_path: Path) -> None:
    write_keys(tmp_path, ["a", "b"])
    public, secret = load_secret(tmp_path, "a")
    assert zmq.auth.load_certificate(tmp_path / "a.key_secret") == (public, secret)
    assert zmq.auth.load_certificate(tmp_path / "a.key") == (public, None)
    assert load_public(tmp_path, "a") == public and len(secret) == 40
    assert zmq.curve_public(secret) == public  # a real pair
    assert public_keys(tmp_path) == {public: "a", load_public(tmp_path, "b"): "b"}
    assert load_public(tmp_path, "b") != public
    write_keys(tmp_path, ["a"])  # rewriting gives a fresh pair
    assert load_public(tmp_path, "a") != public


def test_an_interrupted_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(keys.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_keys(tmp_path, ["a"])
    assert list(tmp_path.iterdir()) == []


def test_an_exposed_or_broken_secret_is_refused(tmp_path: Path) -> None:
    write_keys(tmp_path, ["a"])
    secret = tmp_path / "a.key_secret"
    secret.chmod(0o644)
    with pytest.raises(
        ValueError, match=r"a\.key_secret is accessible by others \(mode 0644\): run chmod 600"
    ):
        load_secret(tmp_path, "a")
    secret.chmod(0o640)
    with pytest.raises(ValueError, match="mode 0640"):
        load_secret(tmp_path, "a")
    secret.chmod(0o600)
    assert load_secret(tmp_path, "a")[0] == load_public(tmp_path, "a")
    (tmp_path / "a.key").write_text('curve\n    public-key = "short"\n')
    with pytest.raises(ValueError, match=r"a\.key: not a CURVE certificate"):
        load_public(tmp_path, "a")


def test_bad_node_ids_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'../x' cannot name a key file"):
        write_keys(tmp_path / "k", ["a", "../x"])
    assert not (tmp_path / "k").exists()
