"""Completion times of byte flows as SimGrid computes them (a test oracle).

Run with the system Python that has Debian's ``python3-simgrid`` (SimGrid 3.32):

    /usr/bin/python3 simgrid_flows.py < problem.json > times.json

``problem.json``: ``{"model": "CM02" | "LV08", "config": {"network/TCP-gamma": ...},
"hops": [{"id", "bytes_per_s", "latency_s"}], "hosts": [names],
"routes": {"SRC DST": [hop ids]}, "flows": [{"src", "dst", "bytes", "start"}]}``.
Each directed hop is one SimGrid link (``SHARED``), routes are given whole (``Full``
routing), so the platform is exactly the problem's. Prints each flow's completion time
(seconds), in order.
"""

import json
import sys
import tempfile

from simgrid import Actor, Engine, Host, Mailbox, this_actor


def platform(problem):
    lines = [
        "<?xml version='1.0'?>",
        '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">',
        '<platform version="4.1">',
        '<zone id="world" routing="Full">',
    ]
    lines += [f'<host id="{h}" speed="1Gf"/>' for h in problem["hosts"]]
    lines += [
        f'<link id="{h["id"]}" bandwidth="{h["bytes_per_s"]!r}Bps" latency="{h["latency_s"]!r}s"/>'
        for h in problem["hops"]
    ]
    for pair, hops in problem["routes"].items():
        src, dst = pair.split(" ")
        links = "".join(f'<link_ctn id="{h}"/>' for h in hops)
        lines.append(f'<route src="{src}" dst="{dst}" symmetrical="NO">{links}</route>')
    lines += ["</zone>", "</platform>"]
    return "\n".join(lines)


def main():
    problem = json.load(sys.stdin)
    args = ["oracle", f"--cfg=network/model:{problem['model']}", "--log=root.thres:critical"]
    args += [f"--cfg={key}:{value}" for key, value in problem.get("config", {}).items()]
    engine = Engine(args)
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as xml:
        xml.write(platform(problem))
        xml.flush()
        engine.load_platform(xml.name)
    done = [None] * len(problem["flows"])

    def send(box, size, start):
        this_actor.sleep_for(start)
        Mailbox.by_name(box).put("x", size)

    def receive(box, i):
        Mailbox.by_name(box).get()
        done[i] = Engine.clock

    for i, f in enumerate(problem["flows"]):
        Actor.create(f"r{i}", Host.by_name(f["dst"]), receive, f"m{i}", i)
        Actor.create(f"s{i}", Host.by_name(f["src"]), send, f"m{i}", f["bytes"], f["start"])
    engine.run()
    json.dump(done, sys.stdout)


if __name__ == "__main__":
    main()
