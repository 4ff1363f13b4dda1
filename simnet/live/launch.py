"""``simnet live``: run a scenario's actors in several OS processes over ZeroMQ.

The launcher deals its nodes to its processes in turn (process ``k`` of ``n`` runs nodes
``k``, ``k + n``, …), starts them (:func:`~simnet.live.host.host_main`), hands every
process the mailbox endpoints of all nodes and one start instant on the monotonic clock,
shows progress, tells every process when the actors of a node elsewhere have ended (a
workload can wait for the cloud's training to end, say), and stops them all once the
workload is done: a traffic run when every transfer has arrived or was dropped, a
learning run when every process says its part of the workload finished. A process's
index, which numbers its messages, is the topology position of its first node, so
indices never collide, whichever launcher runs the process.

Alone, the launcher then merges what its processes recorded into the usual run directory
(:func:`~simnet.live.merge.write_live_run`), times in wall-clock seconds since the
start; ``summary.json`` says ``"mode": "live"``. Across machines each launcher runs the
nodes of its ``--only`` and binds their hosts-file addresses; the launchers agree on the
start instant, the ended nodes, when the run is done and the stop over the control
channel of :mod:`simnet.live.control`, and each writes its part (``part.json``) for
``simnet live merge``.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import zmq
from tqdm import tqdm

from simnet.config.scenario import Overrides, Scenario, load_scenario, override_pairs
from simnet.config.yaml_file import read_yaml
from simnet.errors import InputError
from simnet.live.control import (
    START_DELAY_S,
    Control,
    Coordinator,
    Follower,
    Status,
    Stop,
    combined,
    fingerprint,
)
from simnet.live.host import HostPlan, host_main
from simnet.live.keys import write_keys
from simnet.live.merge import PART_FORMAT, Part, write_live_run, write_part

READY_TIMEOUT_S = 300.0
"""Seconds a process may take to build its world and bind its mailboxes (and, across
machines, the launchers to find each other)."""
TICK_S = 0.1
"""Seconds the launcher waits for its processes' reports before looking around again."""
CONTROL = "control"
"""The hosts-file entry of the launchers' control channel."""
ELSEWHERE = -1
"""The process index of a node another launcher runs."""


@dataclass(frozen=True)
class Hosts:
    """A ``--hosts`` file (``path``): each node's endpoint ``tcp://host:port`` in file
    order, and the launchers' ``control`` endpoint (``None``: not given)."""

    path: str
    addresses: dict[str, str]
    control: str | None

    def entries(self) -> dict[str, str | None]:
        """Every entry of the file, ``control`` last."""
        return {**self.addresses, CONTROL: self.control}


def check_live(scenario: Scenario) -> None:
    """A live run injects no node faults (they are the simulation's to study); link events
    only into traffic workloads (nobody waits for what a link drops)."""
    config = scenario.config
    if scenario.node_events or config.faults.dropout or scenario.availability:
        raise InputError(scenario.source, "faults", "a live run injects no node faults")
    if config.network.events and scenario.workload.kind != "traffic":  # type: ignore[attr-defined]
        raise InputError(
            scenario.source, "network.events", "a live run takes link events for traffic only"
        )


def read_hosts(path: Path, nodes: list[str]) -> Hosts:
    """A ``--hosts`` file: a YAML mapping of node id (or ``control``) to ``host:port``."""
    raw = read_yaml(path, "hosts file")
    if not isinstance(raw, dict):
        raise InputError(str(path), "", "a hosts file maps node ids to host:port")
    addresses: dict[str, str] = {}
    control = None
    for key, where in raw.items():
        name = str(key)
        if name == CONTROL and CONTROL in nodes:
            raise InputError(str(path), name, "is a node and the launchers' control entry")
        if name != CONTROL and name not in nodes:
            raise InputError(str(path), name, "unknown node")
        host, _, port = str(where).rpartition(":")
        if not host or not port.isdigit():
            raise InputError(str(path), name, f"expected host:port, got {where!r}")
        if name == CONTROL:
            control = f"tcp://{host}:{port}"
        else:
            addresses[name] = f"tcp://{host}:{port}"
    return Hosts(str(path), addresses, control)


def local_nodes(only: Sequence[str] | None, nodes: list[str], hosts: Hosts | None) -> list[str]:
    """The nodes this launcher runs, in topology order: those of ``only`` (which needs a
    hosts file giving every node and the control channel an address), else all."""
    if only is None:
        return nodes
    if hosts is None:
        raise InputError("--only", "", "needs --hosts: the address of every node")
    for node in only:
        if node not in nodes:
            raise InputError("--only", node, "unknown node")
    if not only:
        raise InputError("--only", "", "names no node")
    for node in nodes:
        if node not in hosts.addresses:
            raise InputError(hosts.path, node, "missing: with --only every node needs host:port")
    if hosts.control is None:
        raise InputError(hosts.path, CONTROL, "missing: with --only the launchers meet there")
    return [n for n in nodes if n in set(only)]


def loopback(endpoint: str) -> bool:
    """Whether ``tcp://host:port`` binds a loopback address only."""
    host = endpoint.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def live_run(
    path: str,
    overrides: Overrides | None,
    seed: int | None,
    out_dir: Path,
    processes: int | None = None,
    shaping: str = "app",
    curve: bool = False,
    keys: Path | None = None,
    hosts: Path | None = None,
    time_limit_s: float = 600.0,
    progress: bool = True,
    only: Sequence[str] | None = None,
) -> dict[str, Any] | Part:
    """Run the scenario at ``path`` live; write the run directory ``out_dir`` and return
    its summary. With ``only`` (the nodes this machine runs; needs ``hosts``): run those
    with the launchers of the other nodes, write this launcher's ``part.json`` to
    ``out_dir`` and return it as a :class:`~simnet.live.merge.Part`."""
    scenario = load_scenario(path, overrides, seed)
    check_live(scenario)
    nodes = list(scenario.topology.nodes)
    layout = read_hosts(hosts, nodes) if hosts is not None else None
    local = local_nodes(only, nodes, layout)
    if curve:
        if only is not None and keys is None:
            raise InputError("--keys", "", "needed with --only: every launcher uses one folder")
        keys = keys or out_dir / "keys"
        if not keys.is_dir() or not any(keys.glob("*.key")):
            write_keys(keys, nodes)
    dealt = _deal(local, processes or os.cpu_count() or 2, 2 if only is None else 1)
    plans = _plans(path, overrides, seed, nodes, dealt, shaping, keys if curve else None, layout)
    link = None
    if only is not None and layout is not None:
        link = _control(scenario, layout, local, keys if curve else None, shaping, curve)
    if layout is not None:
        binds = [layout.addresses[n] for n in local if n in layout.addresses]
        _warn_exposed(binds, link, layout, curve)
    remote = {n: e for n, e in layout.addresses.items() if n not in local} if layout else {}
    started = time.perf_counter()
    results, stopped = _run_hosts(plans, dealt, scenario, time_limit_s, progress, remote, link)
    part = {
        "format": PART_FORMAT,
        "scenario": scenario.as_run(),
        "relative": sorted(scenario.origin.made_absolute),
        "hosts": layout.entries() if layout is not None else None,
        "started_at": link.at if link is not None else None,
        "nodes": local,
        "shaping": shaping,
        "curve": curve,
        "stopped": stopped,
        "wall_time_s": time.perf_counter() - started,
        "rejected_control": dict(link.rejected) if link is not None else {},
        "processes": [
            {"index": plan.index, "nodes": group, "result": result}
            for plan, group, result in zip(plans, dealt, results, strict=True)
        ],
    }
    if only is None:
        return write_live_run([part], out_dir)
    return write_part(out_dir, part)


def _deal(local: list[str], processes: int, least: int) -> list[list[str]]:
    """The nodes of each process: ``processes`` (at least ``least``, at most one per node)
    take the nodes ``local`` in turn."""
    count = min(len(local), max(least, processes))
    return [local[k::count] for k in range(count)]


def _plans(
    path: str, overrides: Overrides | None, seed: int | None, nodes: list[str],
    dealt: list[list[str]], shaping: str, keys: Path | None, hosts: Hosts | None,
) -> list[HostPlan]:  # fmt: skip
    """One plan per group of ``dealt`` nodes; a process's index is the position of its
    first node in the topology's ``nodes``, the nodes no group holds run elsewhere."""
    position = {node: i for i, node in enumerate(nodes)}
    assignment = dict.fromkeys(nodes, ELSEWHERE)
    assignment.update({node: position[group[0]] for group in dealt for node in group})
    pairs = tuple(override_pairs(overrides))
    addresses = hosts.addresses if hosts is not None else None
    where = None if keys is None else str(keys)
    return [
        HostPlan(path, pairs, seed, position[g[0]], assignment, shaping, where, addresses)
        for g in dealt
    ]


def _control(
    scenario: Scenario, hosts: Hosts, local: list[str], keys: Path | None, shaping: str,
    curve: bool,
) -> Control:  # fmt: skip
    """This launcher's end of the control channel: the coordinator's if it runs the hosts
    file's first node; keyed with its own first node in hosts-file order."""
    head = next(iter(hosts.addresses))
    key_node = next(n for n in hosts.addresses if n in local)
    run = fingerprint(scenario.as_run(), hosts.entries(), {"shaping": shaping, "curve": curve})
    known = frozenset(hosts.addresses)
    endpoint = str(hosts.control)
    try:
        if head in local:
            return Coordinator(local, known, run, endpoint, keys, key_node, READY_TIMEOUT_S)
        return Follower(local, known, run, endpoint, keys, key_node, head, READY_TIMEOUT_S)
    except zmq.ZMQError as exc:
        raise RuntimeError(f"control channel at {endpoint}: {exc}") from None


def _warn_exposed(binds: list[str], link: Control | None, hosts: Hosts, curve: bool) -> None:
    """One line on stderr if this launcher binds beyond loopback without CURVE: the
    addresses ``binds`` of its nodes and, if it coordinates, the control channel's."""
    if isinstance(link, Coordinator):
        binds = [*binds, str(hosts.control)]
    exposed = [e for e in binds if not loopback(e)]
    if exposed and not curve:
        print(
            f"warning: binding {', '.join(exposed)} without --curve: anyone who reaches "
            "these addresses can send frames to the run (use --curve --keys DIR)",
            file=sys.stderr,
        )


def _run_hosts(
    plans: list[HostPlan], dealt: list[list[str]], scenario: Scenario, time_limit_s: float,
    progress: bool, remote: dict[str, str], link: Control | None,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """Start the processes (of the nodes ``dealt``), run them until done or
    ``time_limit_s``, collect results (``remote``: endpoints of the nodes other launchers
    run, over ``link``)."""
    spawn = multiprocessing.get_context("spawn")
    pipes = [spawn.Pipe() for _ in plans]
    workers = [
        spawn.Process(
            target=host_main,
            args=(plan, child, scenario.threads),
            name=f"process {plan.index} ({', '.join(group)})",  # as its errors name it
            daemon=True,
        )
        for plan, group, (_, child) in zip(plans, dealt, pipes, strict=True)
    ]
    conns = [parent for parent, _ in pipes]
    for worker, (_, child) in zip(workers, pipes, strict=True):
        worker.start()
        child.close()  # the process holds its end now: its pipe ends with it
    failed = True
    try:
        endpoints, start_at = _start(conns, workers, link)
        for conn, worker in zip(conns, workers, strict=True):
            _send(conn, worker, ({**remote, **endpoints}, start_at))
        stopped = _watch(conns, workers, scenario, start_at, time_limit_s, progress, link)
        for conn, worker in zip(conns, workers, strict=True):
            _send(conn, worker, "stop")
        results = [
            _expect(conn, worker, "result", 60.0)
            for conn, worker in zip(conns, workers, strict=True)
        ]
        if link is not None:
            link.finish()
        failed = False
    except BaseException as exc:
        if link is not None:
            nodes = ", ".join(link.nodes)
            link.abort(f"the launcher of {nodes} failed: {exc or type(exc).__name__}")
        raise
    finally:
        if link is not None:
            link.close()
        for worker in workers:  # a failed run's processes may wait for a word: no waiting
            worker.join(timeout=0 if failed else 10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    return results, stopped


def _ended(worker: BaseProcess) -> RuntimeError:
    """The error of a process that ended without a word, naming it and its nodes."""
    worker.join(1.0)  # its exit code
    return RuntimeError(f"{worker.name} ended without a word (exit code {worker.exitcode})")


def _send(conn: Connection, worker: BaseProcess, word: Any) -> None:
    """Send ``word`` to the process ``worker`` over its pipe ``conn``."""
    try:
        conn.send(word)
    except OSError:
        raise _ended(worker) from None


def _recv(conn: Connection, worker: BaseProcess) -> tuple[str, Any]:
    """The next message of the process ``worker`` on its pipe ``conn``; ``RuntimeError``
    if it failed or ended without a word."""
    try:
        kind, value = conn.recv()
    except (EOFError, OSError):
        raise _ended(worker) from None
    if kind == "error":
        raise RuntimeError(value)
    return kind, value


def _reports(
    conns: list[Connection], workers: list[BaseProcess], which: list[int]
) -> list[tuple[int, Any]]:
    """The reports of the processes ``which`` (indices) that come within :data:`TICK_S`,
    as (index, value); ``RuntimeError`` if one failed or ended without a word."""
    came = wait([conns[i] for i in which] + [workers[i].sentinel for i in which], TICK_S)
    out = []
    for i in which:
        if conns[i] in came or conns[i].poll():
            out.append((i, _recv(conns[i], workers[i])[1]))
        elif workers[i].sentinel in came:
            raise _ended(workers[i])
    return out


def _start(
    conns: list[Connection], workers: list[BaseProcess], link: Control | None
) -> tuple[dict[str, str], float]:
    """Wait until every process has bound its mailboxes and, across machines, the
    coordinator announced the start; their endpoints and the start on the monotonic
    clock."""
    ready: dict[int, dict[str, str]] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        waiting = [i for i in range(len(conns)) if i not in ready]
        if waiting:
            ready.update(_reports(conns, workers, waiting))
        else:
            time.sleep(TICK_S)
        everyone = len(ready) == len(conns)
        if not everyone and time.monotonic() > deadline:
            raise RuntimeError(f"a live process sent no ready within {READY_TIMEOUT_S:g} s")
        endpoints = {node: endpoint for r in ready.values() for node, endpoint in r.items()}
        if link is None and everyone:
            return endpoints, time.monotonic() + START_DELAY_S
        at = link.starting(everyone) if link is not None else None
        if at is not None:  # the wall-clock instant on this machine's monotonic clock
            return endpoints, time.monotonic() + at - time.time()


def _expect(conn: Connection, worker: BaseProcess, what: str, timeout_s: float) -> Any:
    """The next message ``what`` from the process ``worker`` (its progress reports
    skipped)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if not conn.poll(left):
            break
        kind, value = _recv(conn, worker)
        if kind == what:
            return value
    raise RuntimeError(f"{worker.name} sent no {what} within {timeout_s:g} s")


def _watch(
    conns: list[Connection], workers: list[BaseProcess], scenario: Scenario, start_at: float,
    limit_s: float, show: bool, link: Control | None,
) -> str | None:  # fmt: skip
    """Follow the progress reports until the workload is done (``None``) or why not."""
    workload = scenario.workload
    traffic = workload.kind == "traffic"  # type: ignore[attr-defined]
    until = getattr(workload, "until", None)
    status: dict[int, Status] = {}
    told: set[str] = set()
    bar = tqdm(desc=f"{scenario.name} (live)", disable=not show, leave=False, dynamic_ncols=True)
    try:
        while True:
            status.update(_reports(conns, workers, list(range(len(conns)))))
            local = combined(status.values()) if len(status) == len(conns) else None
            if link is not None:
                link.tick(local)
            ended = {node for s in status.values() for node in s["ended"]}
            ended = (ended | (link.ended if link is not None else set())) - told
            if ended:  # every process learns which nodes' actors have ended
                told |= ended
                for conn, worker in zip(conns, workers, strict=True):
                    _send(conn, worker, ("ended", sorted(ended)))
            overall = local if link is None else link.overall
            elapsed = time.monotonic() - start_at
            if overall is not None:
                bar.total = overall["planned"]
                bar.n = overall["received"] if traffic else overall["progress"]
            bar.set_postfix_str(f"wall {elapsed:.1f} s")
            deciding = local if link is None else link.deciding()
            verdict = (link.verdict if link is not None else None) or _verdict(
                deciding, traffic, until is not None and elapsed >= until, elapsed, limit_s
            )
            if verdict is not None:
                if link is not None:
                    link.stop(verdict.reason)
                return verdict.reason
    finally:
        bar.close()


def _verdict(
    status: Status | None, traffic: bool, past_until: bool, elapsed: float, limit_s: float
) -> Stop | None:
    """Whether to stop: the workload is done (``status``: the whole run's, if this
    launcher decides), a traffic run is ``past_until``, or the time limit is reached."""
    if traffic and past_until:
        return Stop(None)
    if status is not None and (
        status["received"] + len(status["dropped"]) >= status["planned"]
        if traffic
        else status["finished"]
    ):
        return Stop(None)
    if elapsed > limit_s:
        return Stop(f"the live run reached its time limit of {limit_s:g} s")
    return None
