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


# Files that are not UTF-8 text, and --set values that are not YAML (issue 21 section 5).

TRAFFIC = "workload: {kind: traffic, transfers: [{src: left0, dst: right0, bytes: 1}]}\n"
FEDERATED = """topology: {generate: tree, edges: 1, ends_per_edge: 2}
faults: {trace: trace.csv}
workload:
  kind: federated
  data: {train: 40, valid: 10, test: 10}
  edge: {deadline_s: 1.0}
  cloud: {deadline_s: 1.0}
"""
DUMBBELL = Path(__file__).parents[1] / "topologies" / "dumbbell.yaml"


def one_error_line(capsys) -> str:
    """The one stderr line of a user mistake, without its ``error: `` prefix."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


def test_scenario_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n" + TRAFFIC.encode())
    for args in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "run")]):
        assert main(args) == 2
        message = one_error_line(capsys)
        assert message == f"{path}: not UTF-8 text (byte 0xe9 at offset 9, line 1)"
    assert not (tmp_path / "run").exists()


def test_scenario_not_utf8_real_process(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(TRAFFIC.encode() + b"# \xff\xfe\n")
    proc = subprocess.run(
        [sys.executable, "-m", "simnet", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {path}: not UTF-8 text (byte 0xff at offset")


def test_topology_file_not_utf8(tmp_path, capsys):
    topology = tmp_path / "topo.yaml"
    topology.write_bytes(DUMBBELL.read_bytes().replace(b"bottleneck", b"bottleneck \xff", 1))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(f"topology: topo.yaml\n{TRAFFIC}")
    assert main(["validate", str(scenario)]) == 2
    message = one_error_line(capsys)
    assert message.startswith(f"{topology}: not UTF-8 text (byte 0xff at offset ")
    assert message.endswith(", line 1)")


def test_graphml_topology_not_utf8(tmp_path, capsys):
    graphml = Path(__file__).parents[1] / "topologies" / "abilene_mini.graphml"
    data = graphml.read_bytes()
    at = data.index(b"<graph ")
    (tmp_path / "net.graphml").write_bytes(data[:at] + b"<!-- \xff -->" + data[at:])
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(f"topology: net.graphml\n{TRAFFIC}")
    assert main(["validate", str(scenario)]) == 2
    message = one_error_line(capsys)
    assert message.startswith(f"{tmp_path / 'net.graphml'}: graphml: cannot read ")


def test_fault_trace_not_utf8(tmp_path, capsys):
    (tmp_path / "trace.csv").write_bytes(b"node,t_down,t_up\nedge0,1.0,\xff\n")
    scenario = tmp_path / "faulty.yaml"
    scenario.write_text(FEDERATED)
    assert main(["validate", str(scenario)]) == 2
    message = one_error_line(capsys)
    want = "faults.trace: trace.csv: not UTF-8 text (byte 0xff at offset 27, line 2)"
    assert message == f"{scenario}: {want}"


def test_sweep_file_not_utf8(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(f"topology: {DUMBBELL}\n{TRAFFIC}")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_bytes(b"scenario: base.yaml\ngrid: {seed: [0, 1]}  # \xc3\x28\n")
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    message = one_error_line(capsys)
    assert message.startswith(f"{sweep}: not UTF-8 text (byte 0xc3 at offset ")
    assert not (tmp_path / "out").exists()


def test_hosts_file_not_utf8(tmp_path, capsys):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_bytes(b"left0: h\xf6st:5555\n")
    scenario = Path(__file__).parents[1] / "scenarios" / "traffic_dumbbell.yaml"
    out = tmp_path / "live"
    assert main(["live", str(scenario), "--hosts", str(hosts), "--out", str(out), "--quiet"]) == 2
    assert one_error_line(capsys) == f"{hosts}: not UTF-8 text (byte 0xf6 at offset 8, line 1)"


def test_link_class_override_that_is_not_yaml(capsys):
    scenario = Path(__file__).parents[1] / "scenarios" / "traffic_tree.yaml"
    key = "topology.links[edge-cloud].bandwidth_mbps"
    assert main(["validate", str(scenario), "--set", f"{key}=[1,"]) == 2
    message = one_error_line(capsys)
    assert message.startswith(f"--set: {key}: invalid value '[1,'")


def test_plain_override_that_is_not_yaml_stays_text(capsys):
    """A plain key keeps the documented fallback: a value that is not YAML is a string."""
    scenario = Path(__file__).parents[1] / "scenarios" / "traffic_tree.yaml"
    assert main(["validate", str(scenario), "--set", "network.bandwidth_factor=[1,"]) == 2
    message = one_error_line(capsys)
    assert message.startswith(f"{scenario}: network.bandwidth_factor: ")
    assert message.endswith("(got '[1,')")
    assert main(["validate", str(scenario), "--set", "name=[1,"]) == 0
