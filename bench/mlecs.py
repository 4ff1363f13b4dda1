"""ML-ECS and its baselines across modality existing rates, and the communication share.

    python bench/mlecs.py [--scenario scenarios/mlecs_urfall.yaml] [--rho 0.5 0.7 0.8]
                          [--set key=value ...]

For each ρ and method (ML-ECS, Standalone, Multi-FedAvg, w/o MMA, w/o SE-CCL) runs the
scenario and prints the devices' average / best / worst macro F1 and the server's; then
the parameters each device uploads per round and their share of its model, for the
simulated models and for real-size configurations built on the meta device (a
GPT-2-large SLM with LoRA r = 8 and r = 24 on ``c_attn``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from learning.llm import GPT2_LARGE, meta_counts
from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario

METHODS = ("ml_ecs", "standalone", "multi_fedavg", "no_mma", "no_se_ccl")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "mlecs_urfall.yaml")
    parser.add_argument("--rho", type=float, nargs="+", default=[0.5, 0.7, 0.8])
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="mlecs-"))
    rows, share = [], {}
    for rho in args.rho:
        for method in METHODS:
            sets = [*args.set, f"workload.rho={rho}", f"workload.method={method}"]
            summary = run_scenario(
                load_scenario(args.scenario, sets), out / f"{rho}-{method}", progress=False,
                figures=False,
            )  # fmt: skip
            f1 = summary["device_f1_macro"]
            server = summary["server"].get("f1_macro")
            rows.append({"rho": rho, "method": method, "avg F1": f1["mean"], "best F1": f1["best"],
                         "worst F1": f1["worst"], "server F1": server,
                         "wall s": summary["wall_time_s"]})  # fmt: skip
            share[method] = (
                summary["uploaded_parameters_per_device_round"]["mean"],
                summary["transmitted_share"],
                summary["bytes_by_kind"].get("lora_update", {}).get("sent", 0),
            )
    pd.set_option("display.width", 200)
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    print(pd.DataFrame(rows).to_string(**fmt))
    print("\nuploaded per device and round, from the messages (simulated models, last ρ)\n")
    table = [
        {"method": m, "parameters (mean)": p, "of device model (mean)": s["mean"],
         "min": s["min"], "max": s["max"], "upload bytes (all)": b}
        for m, (p, s, b) in share.items()
    ]  # fmt: skip
    shares = ("of device model (mean)", "min", "max")
    formatters = {c: (lambda v: f"{v:.3%}") for c in shares}
    formatters["parameters (mean)"] = lambda v: f"{v:,.0f}"
    print(pd.DataFrame(table).to_string(index=False, formatters=formatters))
    print("\nreal-size SLM (meta device, no weights)\n")
    real = []
    for r in (8, 24):
        counts = meta_counts(GPT2_LARGE, r=r)
        real.append({"SLM": "GPT-2 large", "LoRA r": r, "total": counts["total"],
                     "LoRA": counts["trainable"], "share": counts["ratio"]})  # fmt: skip
    print(pd.DataFrame(real).to_string(index=False, float_format=lambda v: f"{v:.3%}"))


if __name__ == "__main__":
    main()
