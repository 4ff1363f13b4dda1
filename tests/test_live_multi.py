"""Live runs across machines, played on loopback: several launchers with disjoint
``--only`` sets, their control channel, and ``simnet live merge``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zmq

from simnet.api import live, live_merge
from simnet.cli import main
from simnet.config.scenario import load_scenario
from simnet.errors import InputError
from simnet.live.control import Coordinator, Follower, fingerprint
from simnet.live.keys import write_keys
from simnet.live.launch import live_run, read_hosts
from simnet.runner import run_scenario

ROOT = Path(__file__).parents[1]
MB = 1_000_000
NODES = ["a0", "a1", "l", "r", "b0", "b1"]
EAST, WEST = ["a0", "l", "b0"], ["a1", "r", "b1"]
"""The two launchers' nodes: the processes of a one-launcher run with 2 processes."""

# the l–r link is down from 0.3 to 1.0 s: the two 2 MB transfers crossing it are dropped
DUMBBELL = {
    "name": "multi_dumbbell",
    "seed": 0,
    "topology": {
        "nodes": [{"id": n, "tier": "edge" if n in "lr" else "end", "flops": 1e12} for n in NODES],
        "links": [
            {"a": "a0", "b": "l", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "a1", "b": "l", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "l", "b": "r", "latency_ms": 20, "bandwidth_mbps": 16},
            {"a": "r", "b": "b0", "latency_ms": 5, "bandwidth_mbps": 100},
            {"a": "r", "b": "b1", "latency_ms": 5, "bandwidth_mbps": 100},
        ],
    },
    "network": {"events": [{"at": 0.3, "a": "l", "b": "r", "state": "down"},
                           {"at": 1.0, "a": "l", "b": "r", "state": "up"}]},
    "workload": {
        "kind": "traffic",
        "transfers": [
            {"src": "a0", "dst": "b0", "bytes": 2 * MB, "at": 0.0},
            {"src": "a1", "dst": "b1", "bytes": 2 * MB, "at": 0.0},
            {"src": "b0", "dst": "a1", "bytes": 1 * MB, "at": 1.2},
            {"src": "a0", "dst": "b1", "bytes": 300_000, "at": 1.3},
        ],
    },
}  # fmt: skip
LEARNING = [
    "workload.cloud.updates=1", "workload.inference.requests=1", "workload.data.train=90",
    "workload.data.test=45", "workload.end.training.epochs=1",
    "workload.edge.adapter_training.epochs=1", "workload.end.raw_bytes_per_sample=750000",
    "network.bandwidth_factor=4",
]  # fmt: skip
"""mosei_async, short: 1 merge, then 1 inference request per placement, over fast links."""


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def hosts_file(path: Path, nodes: list[str], wide: tuple[str, ...] = ()) -> Path:
    """Free loopback ports for ``nodes`` (in this order, first the coordinator's) and the
    control channel; ``wide`` nodes bind every interface."""
    ports = free_ports(len(nodes) + 1)
    hosts = ["0.0.0.0" if n in wide else "127.0.0.1" for n in nodes]
    entries = {n: f"{h}:{p}" for n, h, p in zip(nodes, hosts, ports[:-1], strict=True)}
    entries["control"] = f"127.0.0.1:{ports[-1]}"
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def launcher(scenario: Path | str, hosts: Path, only: list[str], out: Path, *extra: str):
    return subprocess.Popen(
        [sys.executable, "-m", "simnet", "live", str(scenario), "--hosts", str(hosts),
         "--only", ",".join(only), "--out", str(out), "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def finished(*launchers: subprocess.Popen) -> list[tuple[int, str]]:
    outs = [p.communicate(timeout=120) for p in launchers]
    return [(p.returncode, err) for p, (_, err) in zip(launchers, outs, strict=True)]


def messages(run: Path) -> set[tuple]:
    rows = pd.read_csv(run / "messages.csv")
    return set(rows[["id", "src", "dst", "kind", "bytes", "status"]].itertuples(index=False))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """The dumbbell run by two launchers with CURVE, merged, and run by one launcher."""
    tmp = tmp_path_factory.mktemp("multi")
    path = tmp / "dumbbell.yaml"
    path.write_text(yaml.safe_dump(DUMBBELL))
    hosts = hosts_file(tmp / "hosts.yaml", NODES)
    write_keys(tmp / "keys", NODES)
    curve = ("--curve", "--keys", str(tmp / "keys"))
    east = launcher(path, hosts, EAST, tmp / "east", "--processes", "2", *curve)
    west = launcher(path, hosts, WEST, tmp / "west", "--processes", "1", *curve)
    ends = finished(east, west)
    one = live_run(str(path), [], None, tmp / "one", processes=2, progress=False)
    merged = main(["live", "merge", str(tmp / "west"), str(tmp / "east"), "--out",
                   str(tmp / "merged"), "--quiet"])  # fmt: skip
    return {"tmp": tmp, "path": path, "ends": ends, "one": one, "merged": merged}


def test_two_launchers_give_the_run_of_one(traffic):
    tmp = traffic["tmp"]
    (east_rc, east_err), (west_rc, west_err) = traffic["ends"]
    assert east_rc == west_rc == 0, (east_err, west_err)
    assert traffic["merged"] == 0
    merged = json.loads((tmp / "merged" / "summary.json").read_text())
    one = traffic["one"]
    assert messages(tmp / "merged") == messages(tmp / "one")
    assert merged["messages"] == one["messages"] == {"delivered": 2, "dropped": 2, "in_flight": 0}
    for key in ("complete", "bytes_total", "bytes_delivered", "bytes_by_phase", "workload"):
        assert merged[key] == one[key], key
    assert merged["processes"] == 3 and merged["curve"] and not one["curve"]
    assert merged["live"]["launchers"] == 2 and one["live"]["launchers"] == 1
    for summary in (one, merged):  # per reason, summed over processes
        assert summary["live"]["rejected_control"] == {}
        assert sum(summary["live"]["rejected_frames"].values()) == summary["rejected_frames"]
    rows = pd.read_csv(tmp / "merged" / "messages.csv").set_index("id")
    delivered = rows[rows.status == "delivered"]
    assert (delivered.t_recv > delivered.t_send).all() and (rows.t_send < 2.0).all()
    # each part holds its own nodes' processes, numbered by their first node's position
    east = json.loads((tmp / "east" / "part.json").read_text())
    west = json.loads((tmp / "west" / "part.json").read_text())
    assert [p["nodes"] for p in east["processes"]] == [["a0", "b0"], ["l"]]
    assert [p["index"] for p in east["processes"]] == [0, 2]
    assert [p["index"] for p in west["processes"]] == [1]
    assert east["started_at"] == west["started_at"]


def test_a_merged_run_compares_with_the_simulation(traffic, capsys):
    tmp = traffic["tmp"]
    run_scenario(load_scenario(traffic["path"]), tmp / "sim", progress=False, figures=False)
    assert messages(tmp / "sim") == messages(tmp / "merged")
    assert main(["compare", str(tmp / "sim"), str(tmp / "merged")]) == 0
    assert (tmp / "merged" / "compare.csv").is_file()


def test_merge_refuses_parts_that_do_not_make_one_run(traffic, tmp_path, capsys):
    tmp = traffic["tmp"]
    east, west = tmp / "east", tmp / "west"
    with pytest.raises(InputError, match=r"no part holds a1, r, b1"):
        live_merge([east], tmp_path / "x")
    with pytest.raises(InputError, match=r"east/part.json: nodes: a0 is also in"):
        live_merge([east, east], tmp_path / "x")
    with pytest.raises(InputError, match=r"holds no part.json"):
        live_merge([east, tmp_path], tmp_path / "x")
    for field, change in [("started_at", {"started_at": 1.0}),
                          ("scenario.seed", {"scenario": {"seed": 7}}),
                          ("scenario", {"scenario": {"name": "other"}})]:  # fmt: skip
        other = tmp_path / field
        shutil.copytree(west, other)
        part = json.loads((other / "part.json").read_text())
        for key, value in change.items():
            part[key] = {**part[key], **value} if isinstance(value, dict) else value
        (other / "part.json").write_text(json.dumps(part))
        with pytest.raises(InputError, match=rf"{field}/part.json: {field}: "):
            live_merge([east, other], tmp_path / "x")
    assert main(["live", "merge", str(east), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "east/part.json: nodes: no part holds" in err
    assert not (tmp_path / "x").exists()


def test_only_needs_known_nodes_and_a_complete_hosts_file(tmp_path, capsys):
    path = tmp_path / "dumbbell.yaml"
    path.write_text(yaml.safe_dump(DUMBBELL))
    hosts = hosts_file(tmp_path / "hosts.yaml", NODES)
    partial = tmp_path / "partial.yaml"
    entries = yaml.safe_load(hosts.read_text())
    partial.write_text(yaml.safe_dump({k: v for k, v in entries.items() if k != "b1"}))
    closed = tmp_path / "closed.yaml"
    closed.write_text(yaml.safe_dump({k: v for k, v in entries.items() if k != "control"}))
    cases = [
        (["--hosts", str(hosts), "--only", "a0,zz"], "--only: zz: unknown node"),
        (["--only", "a0"], "--only: needs --hosts"),
        (["--hosts", str(partial), "--only", "b1"], f"{partial}: b1: missing"),
        (["--hosts", str(closed), "--only", "a0"], f"{closed}: control: missing"),
        (["--hosts", str(hosts), "--only", "a0", "--curve"], "--keys: needed with --only"),
    ]
    for args, error in cases:
        assert main(["live", str(path), "--out", str(tmp_path / "x"), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and error in err, (args, err)
    with pytest.raises(InputError, match="--processes"):
        live(path, out=tmp_path / "x", hosts=hosts, only="a0", processes=0)


def until(condition, *ends, timeout_s: float = 5.0) -> None:
    """Let the control ``ends`` exchange messages until ``condition()``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "no agreement"
        for end in ends:
            end.starting(True) if end.at is None else end.tick(STATUS)
        time.sleep(0.02)


STATUS = {"progress": 1.0, "planned": 4.0, "received": 1, "dropped": [2], "finished": False,
          "ended": ["a1"]}  # fmt: skip


def test_the_control_channel_drops_bad_messages_and_agrees_on_the_start():
    endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    coordinator = Coordinator(EAST, frozenset(NODES), "run-1", endpoint, None, "a0", 60)
    context = zmq.Context()
    stranger = context.socket(zmq.DEALER)
    stranger.connect(endpoint)
    hello = {"type": "hello", "nodes": WEST, "run": "run-1", "ready": True}
    for bad in [b"\xff{", {"type": "launch"}, {"type": "bye", "nodes": WEST},
                {**hello, "ready": "yes"}, {**hello, "extra": 1}, {**hello, "nodes": ["zz"]},
                {**hello, "run": "run-2"}]:  # fmt: skip
        stranger.send(bad if isinstance(bad, bytes) else json.dumps(bad).encode())
    until(lambda: sum(coordinator.rejected.values()) == 7, coordinator)
    assert coordinator.rejected == {"json": 1, "type": 1, "unknown": 1, "value": 1,
                                    "fields": 1, "nodes": 1, "run": 1}  # fmt: skip
    assert stranger.poll(2000)
    refusal = json.loads(stranger.recv())
    assert refusal["type"] == "abort" and "runs another scenario" in refusal["error"]
    stranger.close(linger=0)
    context.term()
    follower = Follower(WEST, frozenset(NODES), "run-1", endpoint, None, "a1", "a0", 60)
    until(lambda: follower.at is not None, coordinator, follower)
    assert follower.at == coordinator.at and follower.coordinator == EAST
    until(lambda: follower.ended == {"a1"}, coordinator, follower)  # statuses went round
    assert coordinator.deciding() == {**STATUS, "progress": 2.0, "received": 2}
    coordinator.stop(None)
    until(lambda: follower.verdict is not None, follower)
    follower.stop(follower.verdict.reason)
    coordinator.finish()  # the bye came
    for end in (follower, coordinator):
        end.close()


def test_with_curve_a_follower_must_sign_with_a_key_of_its_own_nodes(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, NODES)
    endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    coordinator = Coordinator(EAST, frozenset(NODES), "run", endpoint, keys, "a0", 60)
    impostor = Follower(WEST, frozenset(NODES), "run", endpoint, keys, "b0", "a0", 60)
    with pytest.raises(RuntimeError, match="signs with the key of a node it does not run"):
        until(lambda: False, coordinator, impostor)
    assert coordinator.rejected == {"key": 1} and not coordinator.followers
    honest = Follower(WEST, frozenset(NODES), "run", endpoint, keys, "a1", "a0", 60)
    until(lambda: honest.at is not None, coordinator, honest)
    for end in (impostor, honest, coordinator):
        end.close()


def fake_follower(endpoint: str, nodes: list[str], run: str, got: list[str]) -> None:
    """Say hello as the launcher of ``nodes`` until the coordinator starts the run, then
    report twice and vanish."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(endpoint)
    hello = {"type": "hello", "nodes": nodes, "run": run, "ready": True}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "run" not in got:
        dealer.send(json.dumps(hello).encode())
        if dealer.poll(200):
            got.append(json.loads(dealer.recv())["type"])
    for _ in range(2):
        dealer.send(json.dumps({"type": "status", "nodes": nodes, "status": None}).encode())
        time.sleep(0.2)
    dealer.close(linger=0)
    context.term()


def fake_coordinator(endpoint: str, nodes: list[str], got: list[str]) -> None:
    """Start the run for the first launcher that is ready, then vanish."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not router.poll(200):
            continue
        peer, data = router.recv_multipart()
        message = json.loads(data)
        got.append(message["type"])
        if message.get("ready"):
            start = {"type": "run", "nodes": nodes, "at": time.time() + 0.3, "status": None}
            router.send_multipart([peer, json.dumps(start).encode()])
            break
    router.close(linger=500)
    context.term()


def test_a_launcher_that_vanishes_ends_the_others_with_one_line(tmp_path):
    """A coordinator whose follower goes silent after the start, and a follower whose
    coordinator does, each end with one line naming the missing nodes (and the one that
    binds beyond loopback without CURVE warned once)."""
    path = tmp_path / "dumbbell.yaml"
    path.write_text(yaml.safe_dump(DUMBBELL))
    runs = {}
    for side in ("east", "west"):  # east's nodes bind every interface, without CURVE
        hosts = hosts_file(tmp_path / f"hosts-{side}.yaml", NODES, tuple(EAST) * (side == "east"))
        layout = read_hosts(hosts, NODES)
        run = fingerprint(
            load_scenario(path).as_run(), layout.entries(), {"shaping": "app", "curve": False}
        )
        got: list[str] = []
        if side == "east":  # the real coordinator, a fake follower
            fake = threading.Thread(target=fake_follower, args=(layout.control, WEST, run, got))
            proc = launcher(path, hosts, EAST, tmp_path / side, "--processes", "1")
        else:  # a fake coordinator, the real follower
            fake = threading.Thread(target=fake_coordinator, args=(layout.control, EAST, got))
            proc = launcher(path, hosts, WEST, tmp_path / side, "--processes", "1")
        fake.start()
        runs[side] = (proc, fake, got)
    started = time.monotonic()
    ends = finished(*(proc for proc, _, _ in runs.values()))
    assert time.monotonic() - started < 60
    for (_, fake, got), (rc, err), missing in zip(
        runs.values(), ends, ("a1, r, b1", "a0, l, b0"), strict=True
    ):
        fake.join()
        assert rc == 1, err
        warnings = [line for line in err.splitlines() if line.startswith("warning: binding")]
        assert len(warnings) == (missing == "a1, r, b1"), err
        assert all("0.0.0.0" in w and "--curve" in w for w in warnings)
        errors = [line for line in err.splitlines() if not line.startswith("warning:")]
        assert len(errors) == 1 and errors[0].startswith("error: live run failed: "), err
        assert f"no word for 5 s from the launcher of {missing}" in errors[0]
        assert "run" in got or "hello" in got
    assert not any((tmp_path / side / "part.json").exists() for side in runs)


def test_a_learning_run_across_two_launchers(tmp_path):
    """Across launchers: the inference requests wait for the cloud's training to end on
    the other machine, ids of messages from the two processes do not collide, and the figures
    that do not depend on wall time are the simulation's."""
    path = ROOT / "scenarios" / "mosei_async.yaml"
    nodes = list(load_scenario(path).topology.nodes)
    hosts = hosts_file(tmp_path / "hosts.yaml", nodes)
    sets = [a for s in LEARNING for a in ("--set", s)]
    east, west = nodes[0::2], nodes[1::2]
    ends = finished(
        launcher(path, hosts, east, tmp_path / "east", "--processes", "1", *sets),
        launcher(path, hosts, west, tmp_path / "west", "--processes", "1", *sets),
    )
    assert [rc for rc, _ in ends] == [0, 0], ends
    merged = live_merge([tmp_path / "east", tmp_path / "west"], tmp_path / "merged").summary
    sim = run_scenario(load_scenario(path, LEARNING), tmp_path / "sim", progress=False,
                       figures=False)  # fmt: skip
    assert merged["complete"] and merged["processes"] == 2
    for key in ("updates_merged", "edge_samples", "parameters_by_kind"):
        assert merged[key] == sim[key], key
    assert merged["cloud"]["version"] == sim["cloud"]["version"] == 1
    assert set(merged["personalisation"]) == set(sim["edges"])
    for placement in ("edge", "cloud"):
        assert merged["inference"][placement]["requests"] == 1
        assert merged["inference"][placement]["failed"] == 0
    rows = pd.read_csv(tmp_path / "merged" / "messages.csv")
    assert (rows.status == "delivered").all()
    simulated = pd.read_csv(tmp_path / "sim" / "messages.csv")
    assert rows.kind.value_counts().to_dict() == simulated.kind.value_counts().to_dict()
    ids = [
        row["id"]
        for side in ("east", "west")
        for process in json.loads((tmp_path / side / "part.json").read_text())["processes"]
        for row in process["result"]["sent"]
    ]
    assert len(ids) == len(rows) and len(set(ids)) == len(ids)
