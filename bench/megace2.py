"""The four Mega-CE² comparison scenarios side by side: accuracy, time to target, training
traffic per tier, and the inference latency breakdown.

    python bench/megace2.py [--out DIR] [--set key=value ...]

Runs ``scenarios/mosei_{async,sync,flat,cloud_only}.yaml`` one after another (a few minutes
each on 2 cores; running them in parallel on 2 cores slows each several-fold) and prints two
tables. Byte columns count training messages only (not the inference phase's ``infer_*``),
on every link of their routes, in MB (10⁶ bytes); times are virtual seconds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from simnet.protocols.inference import TERMS
from simnet.run import run_scenario
from simnet.scenario import Scenario, load_scenario

SCENARIOS = ("async", "sync", "flat", "cloud_only")
ROOT = Path(__file__).resolve().parents[1]


def training_bytes(scenario: Scenario, run_dir: Path) -> dict[str, float]:
    """MB per link class of the run's non-inference messages."""
    messages = pd.read_csv(run_dir / "messages.csv")
    messages = messages[~messages["kind"].str.startswith("infer")]
    totals: dict[str, float] = {}
    for route, size in zip(messages["route"], messages["bytes"], strict=True):
        hops = route.split(">")
        for a, b in zip(hops, hops[1:], strict=False):
            link = scenario.topology.link_class(a, b)
            totals[link] = totals.get(link, 0.0) + size / 1e6
    return totals


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
        mb = training_bytes(scenario, out / name)
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
