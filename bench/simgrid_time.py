"""Times byte flows in SimGrid (run by ``bench/network.py``, with the system Python that
has Debian's ``python3-simgrid``):

    /usr/bin/python3 bench/simgrid_time.py problem.json times.json

``problem.json`` is ``tests/oracles/simgrid_flows.py``'s format without hosts or starts:
``{"model": "CM02" | "LV08", "config": {option: value}, "hops": [{"id", "bytes_per_s",
"latency_s"}], "routes": {"SRC DST": [hop ids]}, "flows": [{"src", "dst", "bytes"}]}``;
every flow starts at t = 0. Each directed hop is one SimGrid link (``SHARED``). Each flow
gets a ``Full`` zone of its own holding its two ends and both its routes (the reverse one
carries the cross-traffic), so the platform grows linearly with the flows where one
``Full`` zone's route table grows with the square of the hosts; the links, shared by
every zone, are all the network model sees. One actor starts every flow with
``Comm.sendto_async`` and waits for all. Writes ``{"seconds": wall seconds of
engine.run() alone, "times": [completion time of each flow, in order]}``.
"""

import json
import sys
import tempfile
import time

from simgrid import Actor, Comm, Engine, Host

GROUP = 100
"""Flow zones per intermediate zone, so that no zone has many children."""


def platform(problem: dict) -> str:
    """The XML platform: the links in a zone of their own (declared before any route names
    them), flow ``i``'s ends ``i:SRC``, ``i:DST`` in
    zone ``f{i}``, flow zones in groups of :data:`GROUP` (their routing never used)."""
    lines = [
        "<?xml version='1.0'?>",
        '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">',
        '<platform version="4.1">',
        '<zone id="world" routing="Full">',
        '<zone id="links" routing="Full">',
    ]
    lines += [
        f'<link id="{h["id"]}" bandwidth="{h["bytes_per_s"]!r}Bps" latency="{h["latency_s"]!r}s"/>'
        for h in problem["hops"]
    ]
    lines.append("</zone>")
    flows = problem["flows"]
    for g in range(0, len(flows), GROUP):
        lines.append(f'<zone id="g{g}" routing="Full">')
        for i in range(g, min(g + GROUP, len(flows))):
            src, dst = flows[i]["src"], flows[i]["dst"]
            lines += [
                f'<zone id="f{i}" routing="Full">',
                f'<host id="{i}:{src}" speed="1Gf"/>',
                f'<host id="{i}:{dst}" speed="1Gf"/>',
            ]
            for s, t in ((src, dst), (dst, src)):
                links = "".join(f'<link_ctn id="{h}"/>' for h in problem["routes"][f"{s} {t}"])
                lines.append(f'<route src="{i}:{s}" dst="{i}:{t}" symmetrical="NO">{links}</route>')
            lines.append("</zone>")
        lines.append("</zone>")
    lines += ["</zone>", "</platform>"]
    return "\n".join(lines)


def main() -> None:
    problem_file, times_file = sys.argv[1:]
    with open(problem_file) as f:
        problem = json.load(f)
    args = ["simgrid_time", f"--cfg=network/model:{problem['model']}", "--log=root.thres:critical"]
    args += [f"--cfg={key}:{value}" for key, value in problem["config"].items()]
    engine = Engine(args)
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as xml:
        xml.write(platform(problem))
        xml.flush()
        engine.load_platform(xml.name)
    ends = [
        (Host.by_name(f"{i}:{f['src']}"), Host.by_name(f"{i}:{f['dst']}"), f["bytes"])
        for i, f in enumerate(problem["flows"])
    ]
    comms: list[Comm] = []

    def start_all() -> None:
        comms.extend(Comm.sendto_async(src, dst, size) for src, dst, size in ends)
        Comm.wait_all(comms)

    Actor.create("flows", ends[0][0], start_all)
    start = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - start
    with open(times_file, "w") as f:
        json.dump({"seconds": seconds, "times": [c.finish_time for c in comms]}, f)


if __name__ == "__main__":
    main()
