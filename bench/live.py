"""How far a live run is from the simulation: transfer-time errors per scenario.

For each traffic scenario, simulate it, run it live on loopback (several OS processes,
ZeroMQ, emulated links) and join the two runs' messages; print the median and p95 of
|live − sim| / sim for messages ≥ 1 MB and for all, and the wall time of the live run.

    python bench/live.py [--processes N] [--shaping app|none] [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from simnet.config.scenario import load_scenario
from simnet.live.launch import live_run
from simnet.report.compare import compare_runs
from simnet.runner import run_scenario

ROOT = Path(__file__).parents[1]
DEFAULT = ["scenarios/traffic_dumbbell.yaml", "scenarios/traffic_tree.yaml"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=DEFAULT)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--shaping", choices=["app", "none"], default="app")
    parser.add_argument("--keep", type=Path, help="keep the run directories here")
    args = parser.parse_args()
    print(f"{'scenario':<22} {'class':<8} {'n':>4} {'median':>8} {'p95':>8} {'live wall s':>12}")
    for name in args.scenarios:
        path = ROOT / name
        with tempfile.TemporaryDirectory() as tmp:
            out = args.keep or Path(tmp)
            sim, live = out / f"{path.stem}-sim", out / f"{path.stem}-live"
            run_scenario(load_scenario(path), sim, progress=False, figures=False)
            summary = live_run(
                str(path), [], None, live, args.processes, args.shaping, progress=False
            )
            rows = compare_runs(sim, live, live).messages
            for label, part in (("≥1 MB", rows[rows["bytes"] >= 1_000_000]), ("all", rows)):
                err = part["rel_error"].abs()
                print(
                    f"{path.stem:<22} {label:<8} {len(part):>4} {err.median():>8.2%} "
                    f"{err.quantile(0.95):>8.2%} {summary['wall_time_s']:>12.1f}"
                )


if __name__ == "__main__":
    main()
