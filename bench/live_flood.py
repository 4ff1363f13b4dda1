"""Peak memory of a live run's processes, clean and under a flood of hostile frames.

Runs ``tests``' dumbbell traffic scenario (four transfers of 0.3–2 MB) live on loopback,
unshaped, three times: clean; while ``bench/flood.py`` sends every mailbox junk, forged
and oversized frames; and while a second flooder also claims node a1 (which never sends
to b0 itself) and sends b0 first chunks of 1 MiB messages that never finish. Prints each
run's largest peak RSS over its processes, the difference to the clean run (goal: within
64 MB), the frames rejected and the partial messages evicted.

    python bench/live_flood.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from flood import free_ports

from simnet.live.launch import live_run

ROOT = Path(__file__).parents[1]
MB = 1_000_000
NODES = [("a0", "end"), ("a1", "end"), ("l", "edge"), ("r", "edge"), ("b0", "end"),
         ("b1", "end")]  # fmt: skip
SCENARIO = {
    "name": "flood_dumbbell",
    "topology": {
        "nodes": [{"id": n, "tier": t, "flops": 1e12} for n, t in NODES],
        "links": [{"a": a, "b": b, "latency_ms": 5, "bandwidth_mbps": 100}
                  for a, b in [("a0", "l"), ("a1", "l"), ("l", "r"), ("r", "b0"), ("r", "b1")]],
    },
    "live": {"reassembly_idle_s": 2.0},
    "workload": {"kind": "traffic", "transfers": [
        {"src": "a0", "dst": "b0", "bytes": 2 * MB, "at": 1.0},
        {"src": "a1", "dst": "b1", "bytes": 2 * MB, "at": 2.0},
        {"src": "b0", "dst": "a1", "bytes": 1 * MB, "at": 3.0},
        {"src": "a0", "dst": "b1", "bytes": 300_000, "at": 4.0},
    ]},
}  # fmt: skip


def targets(args: list[str], mailboxes: list[str]) -> list[str]:
    """The mailboxes a flooder reaches: a ``--partial SRC>DST`` flooder only DST's (under
    SRC's routing id anywhere else it would lock the real SRC out of those mailboxes)."""
    if "--partial" not in args:
        return mailboxes
    dst = args[args.index("--partial") + 1].split(">")[1]
    return [m for m in mailboxes if m.startswith(f"{dst}=")]


def run(tmp: Path, name: str, floods: list[list[str]]) -> dict:
    ports = dict(zip([n for n, _ in NODES], free_ports(len(NODES)), strict=True))
    hosts = tmp / f"{name}-hosts.yaml"
    hosts.write_text(yaml.safe_dump({n: f"127.0.0.1:{p}" for n, p in ports.items()}))
    mailboxes = [f"{n}=tcp://127.0.0.1:{p}" for n, p in ports.items()]
    flooders = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "flood.py"), *args, *targets(args, mailboxes)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for args in floods
    ]
    try:
        summary = live_run(str(tmp / "scenario.yaml"), [], None, tmp / name, processes=3,
                           shaping="none", hosts=hosts, progress=False)  # fmt: skip
    finally:
        sent = sum(int(f.communicate(timeout=60)[0] or 0) for f in flooders)
    summary["flood_multiparts"] = sent
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    seconds = str(args.seconds)
    cases = {
        "clean": [],
        "junk flood": [[seconds]],
        "junk + partial flood": [[seconds], [seconds, "--as", "a1", "--partial", "a1>b0"]],
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO))
        print(f"{'case':<22} {'complete':>8} {'peak RSS MB':>12} {'vs clean':>9} "
              f"{'sent':>8} {'rejected':>9} {'evicted':>8}")  # fmt: skip
        clean = None
        for name, floods in cases.items():
            s = run(out, name.replace(" ", "-"), floods)
            peak = s["live"]["peak_rss_bytes"] / 1e6
            clean = peak if clean is None else clean
            rejected = sum(s["live"]["rejected_frames"].values())
            print(f"{name:<22} {s['complete']!s:>8} {peak:>12.1f} {peak - clean:>+9.1f} "
                  f"{s['flood_multiparts']:>8} {rejected:>9} "
                  f"{s['live']['evicted_partials']:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
