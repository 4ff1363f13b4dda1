"""Each broken file in tests/broken/ gives one line naming the file and field, exit status 2.

The first line of every scenario there says what the error must contain:
``# expect: FILE: FIELD: message``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simnet.cli import main

BROKEN = Path(__file__).parent / "broken"
SCENARIOS = sorted(p for p in BROKEN.glob("*.yaml") if not p.name.startswith("topo_"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its expectation line"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough():
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_broken_input_gives_one_line_and_status_2(path, command, capsys, tmp_path):
    args = [command, str(path)] + (["--out", str(tmp_path / "run")] if command == "run" else [])
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    message = lines[0].removeprefix("error: ")
    want = expected(path)
    file_part = want.split(": ")[0]
    assert Path(message.split(": ")[0]).name == file_part, message
    assert want.removeprefix(file_part) in message.removeprefix(message.split(": ")[0]), message
    assert not (tmp_path / "run").exists()


def test_real_process_exit_status_and_no_traceback():
    path = BROKEN / "unreachable.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "simnet", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "workload.transfers.1.dst" in proc.stderr


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("network.bandwidth_factor=-1", "network.bandwidth_factor"),
        ("workload.transfers.9.bytes=1", "workload.transfers.9"),
        ("seed.x=1", "seed.x"),
        ("nokey", "nokey"),
    ],
)
def test_bad_override_names_the_key(override, field, capsys):
    scenario = Path(__file__).parents[1] / "scenarios" / "traffic_dumbbell.yaml"
    assert main(["validate", str(scenario), "--set", override]) == 2
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1
