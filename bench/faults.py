"""scenarios/faults_mosei.yaml (Mega-CE² under an edge crash, drop-out and a flapping
backhaul) in each protocol: wall time, completeness and what the faults did.

    python bench/faults.py [--modes async sync flat] [--set key=value ...]

Prints one row per cloud mode: complete, wall seconds, virtual seconds, crashes,
drop-outs, retries, give-ups, skipped pushes, dropped messages and the cloud's Acc2.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "faults_mosei.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["async"], help="cloud modes to run")
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="faults-"))
    rows = []
    for mode in args.modes:
        sets = [*args.set, f"workload.cloud.mode={mode}"]
        if mode == "flat":
            sets.append("workload.inference.placements=[cloud]")
        summary = run_scenario(
            load_scenario(SCENARIO, sets), out / mode, progress=True, figures=False
        )
        faults = summary["faults"]
        rows.append({
            "mode": mode, "complete": summary["complete"], "wall s": summary["wall_time_s"],
            "virtual s": summary["virtual_time_s"], "crashes": faults["crash"],
            "drop-outs": faults["dropout"], "retries": faults["retry"],
            "gave up": faults["gave_up"], "skipped pushes": faults["skipped_push"],
            "dropped msgs": summary["messages"]["dropped"],
            "cloud acc2": summary["cloud"]["acc2_non0"],
        })  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
