"""The four Mega-CE² comparison scenarios side by side: accuracy, time to target, training
traffic per tier, and the inference latency breakdown.

    python bench/megace2.py [--out DIR] [--set key=value ...]

Runs ``scenarios/mosei_{async,sync,flat,cloud_only}.yaml`` one after another (a few minutes
each on 2 cores; running them in parallel on 2 cores slows each several-fold) and prints two
tables. Byte columns are the training phase's link bytes (``bytes_by_tier_by_phase``: every
link of a message's route, what it carried there; inference traffic apart), in MB (10⁶
bytes); times are virtual seconds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from simnet.config.scenario import load_scenario
from simnet.protocols.inference import TERMS
from simnet.runner import run_scenario

SCENARIOS = ("async", "sync", "flat", "cloud_only")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the run directories go (default: temp)")
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="megace2-"))
    rows, latency = [], []
    for name in SCENARIOS:
        scenario = load_scenario(ROOT / "scenarios" / f"mosei_{name}.yaml", args.set)
        summary = run_scenario(scenario, out / name, progress=True, figures=False)
        cloud, target = summary["cloud"], summary["target"]
        link_bytes = summary["bytes_by_tier_by_phase"].get("training", {})
        mb = {link: size / 1e6 for link, size in link_bytes.items()}
        rows.append({
            "scenario": name,
            "acc2_non0": cloud["acc2_non0"], "f1_non0": cloud["f1_non0"], "mae": cloud["mae"],
            f"t({target['metric']}≥{target['value']:g}) s": summary["time_to_target_s"],
            "end-edge MB": mb.get("end-edge", 0.0), "edge-cloud MB": mb.get("edge-cloud", 0.0),
            "wall s": summary["wall_time_s"],
        })  # fmt: skip
        for placement, terms in summary.get("inference", {}).items():
            cells = {t: terms[t] for t in (*TERMS, "total_s", "total_p95_s")}
            latency.append({"scenario": name, "placement": placement, **cells})
    pd.set_option("display.width", 200)
    print(f"\nrun directories: {out}\n")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\ninference latency (mean seconds per request)\n")
    print(pd.DataFrame(latency).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
