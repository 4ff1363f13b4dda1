"""``simnet reproduce mega-ce2``: Mega-CE²'s Tables 2–5 and its personalisation, ours beside
the paper's.

Sweeps (each a directory of ``out``, resumable): ``mega-ce2`` (``scenarios/mosei_async.yaml``:
Table 2's and Table 4's "Ours", Table 3's edge placement, the personalisation entries),
``cloud-only`` (``scenarios/mosei_cloud_only.yaml``: Table 3's Cloud-Only), ``baselines``
(EF-LSTM and LF-LSTM trained centrally like the paper's baselines: the cloud-only scenario
with that model, no inference), ``ablation-modalities`` and ``ablation-targets`` (Table
4: Mega-CE² with MulT restricted by ``workload.model.options.modalities`` / ``targets``,
no inference), each over the seeds. Table 5 needs no run: it counts the parameters of the
scenario's MulT and adapter, and of the paper-sized MulT (built on the meta device). The
paper's numbers come from ``data/mega_ce2.yaml``, transcribed once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from learning.models import MulT, PersonalizedModel
from learning.parameters import KINDS, parameter_bytes
from simnet.reproduce.common import (
    SCENARIOS,
    Block,
    Claim,
    Reproduction,
    Settings,
    at_least,
    at_most,
    paper_data,
    run_blocks,
    seed_stats,
    side_by_side,
)

MEGA, CLOUD = "mosei_async.yaml", "mosei_cloud_only.yaml"
BASELINES = {"EF-LSTM": "ef_lstm", "LF-LSTM": "lf_lstm"}
"""Table 2's baselines simnet has → their ``workload.model.name``."""
ABLATIONS = {
    "modalities": {"text-only": ["text"], "audio-only": ["audio"], "video-only": ["vision"]},
    "targets": {"only [V,A->L]": ["text"], "only [L,A->V]": ["vision"], "only [L,V->A]": ["audio"]},
}  # fmt: skip
"""Table 4's variants: MulT option → row → its value."""
SCORES = {"acc2": "cloud.acc2_non0", "f1": "cloud.f1_non0", "mae": "cloud.mae"}
"""Table 2 and 4 metrics → the cloud model's column in ``results.csv``; acc2 and f1 are
fractions there and percent (the paper's unit) in the tables."""
PERCENT = {"acc2": 100.0, "f1": 100.0, "mae": 1.0}
STAGES = {
    "Mega-CE2": ("mega-ce2", "edge", {"t_gen": "feature_s", "t_trans": "upload_s",
                                      "t_infer": "compute_s", "t_trans_score": "download_s"}),
    "Cloud-Only": ("cloud-only", "cloud", {"t_trans_raw": "upload_s", "t_infer": "compute_s",
                                           "t_trans_score": "download_s"}),
}  # fmt: skip
"""Table 3: deployment → (sweep, placement, stage → latency term of ``summary.json``'s
``inference``); ``end_to_end`` is the mean ``total_s``. Cloud-only has no feature step on
the end: the cloud's feature extraction is part of its ``t_infer``."""
QUICK = {
    MEGA: [("workload.cloud.updates", 18), ("workload.end.training.epochs", 2),
           ("workload.inference.requests", 20)],
    CLOUD: [("workload.cloud.updates", 6), ("workload.end.training.epochs", 2),
            ("workload.inference.requests", 20)],
}  # fmt: skip
"""Overrides of ``--quick`` per base (half the merges or epochs, 20 requests)."""
NO_INFERENCE = ("workload.inference", None)
SECONDS_PER_RUN = {True: 12.0, False: 35.0}
"""Mean wall time of one run on 2 cores (quick, full; measured), for the estimate printed
first."""
PAPER_DIMS = {"text": 300, "audio": 74, "vision": 35}
"""CMU-MOSEI's feature sizes: the paper-sized MulT of Table 5 (MulT's defaults)."""
MB = 1e6
"""Table 5's MB: 10⁶ bytes (the paper's adapter sizes fit it, not MiB; docs/megace2.md)."""
LONG = {"ours_s": "ours", "paper_s": "paper"}
"""Table 3's columns under the names :func:`side_by_side` reads."""


def blocks(settings: Settings) -> list[Block]:
    """The sweeps (see the module doc)."""
    seeds = {"seed": list(range(settings.seeds))}

    def fixed(base: str, *own: tuple[str, Any]) -> list[tuple[str, Any]]:
        return [*(QUICK[base] if settings.quick else []), *own, *settings.overrides]

    out = [
        Block("mega-ce2", MEGA, fixed(MEGA), seeds),
        Block("cloud-only", CLOUD, fixed(CLOUD), seeds),
        Block("baselines", CLOUD, fixed(CLOUD, ("workload.model.options", {}), NO_INFERENCE),
              {"workload.model.name": list(BASELINES.values()), **seeds}),
    ]  # fmt: skip
    for option, rows in ABLATIONS.items():
        grid = {f"workload.model.options.{option}": list(rows.values()), **seeds}
        out.append(Block(f"ablation-{option}", MEGA, fixed(MEGA, NO_INFERENCE), grid))
    return out


def labelled(table: pd.DataFrame, key: str, labels: dict[str, Any]) -> pd.DataFrame:
    """``table`` with a ``label`` column: the row of ``labels`` whose value its ``key``
    column holds (a swept list compares as a tuple)."""
    names = {_hashable(v): name for name, v in labels.items()}
    return table.assign(label=table[key].map(lambda v: names[_hashable(v)]))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _score_rows(stats: dict[tuple, tuple[float | None, float | None]], label: str,
                printed: list[float | None], std: bool) -> list[list[Any]]:  # fmt: skip
    """One row per metric of :data:`SCORES` for ``label``: ours (mean, std, in the
    paper's unit) beside the paper's ``printed`` values."""
    rows = []
    for (metric, column), paper in zip(SCORES.items(), printed, strict=True):
        mean, sd = stats.get((label, column), (None, None))
        scale = PERCENT[metric]
        ours = [None if mean is None else mean * scale]
        if std:
            ours.append(None if sd is None else sd * scale)
        rows.append([label, metric, *ours, paper])
    return rows


def _stats(table: pd.DataFrame, columns: list[str]) -> dict[tuple, tuple]:
    return seed_stats(table, ["label"], columns)


def table2(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """``model, metric, ours, ours_std, paper``: every model of the paper's Table 2; the
    ones simnet lacks (MCTN, RAVEN, V2EM) keep ``ours`` empty."""
    base = labelled(results["baselines"], "workload.model.name", BASELINES)
    ours = results["mega-ce2"].assign(label="Mega-CE2")
    stats = {**_stats(base, list(SCORES.values())), **_stats(ours, list(SCORES.values()))}
    rows = []
    for model, printed in paper["table2"]["rows"].items():
        rows += _score_rows(stats, model, printed, std=True)
    return pd.DataFrame(rows, columns=["model", "metric", "ours", "ours_std", "paper"])


def table4(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """``variant, metric, ours, paper``: the ablations and the full model (Mega-CE²)."""
    stats = _stats(results["mega-ce2"].assign(label="full"), list(SCORES.values()))
    for option, rows in ABLATIONS.items():
        table = labelled(results[f"ablation-{option}"], f"workload.model.options.{option}", rows)
        stats.update(_stats(table, list(SCORES.values())))
    out = []
    for variant, printed in paper["table4"]["rows"].items():
        out += _score_rows(stats, variant, printed, std=False)
    return pd.DataFrame(out, columns=["variant", "metric", "ours", "paper"])


def table3(results: dict[str, pd.DataFrame], paper: dict[str, Any]) -> pd.DataFrame:
    """``deployment, stage, ours_s, paper_s``: mean seconds per request over the seeds."""
    stages = paper["table3"]["stages"]
    rows = []
    for deployment, (sweep, placement, terms) in STAGES.items():
        columns = {**terms, "end_to_end": "total_s"}
        table = results[sweep].assign(label=deployment)
        stats = _stats(table, [f"inference.{placement}.{t}" for t in columns.values()])
        for stage, printed in zip(stages, paper["table3"]["rows"][deployment], strict=True):
            term = columns.get(stage)
            mean = stats.get((deployment, f"inference.{placement}.{term}"), (None, None))[0]
            rows.append([deployment, stage, mean, printed])
    return pd.DataFrame(rows, columns=["deployment", "stage", "ours_s", "paper_s"])


def sizes(model: MulT) -> list[tuple[str, float, float]]:
    """(kind, global MB, adapter MB) of ``model`` and the adapter Mega-CE² adds to it."""
    adapter = PersonalizedModel(model).adapter
    base, extra = parameter_bytes(model), parameter_bytes(adapter)
    return [(kind, base[kind] / MB, extra[kind] / MB) for kind in KINDS]


def scenario_model(overrides: list[tuple[str, Any]]) -> tuple[str, MulT]:
    """The MulT of ``scenarios/mosei_async.yaml`` (with ``overrides``) over its data, and
    a label naming its options."""
    from simnet.config.scenario import load_scenario
    from simnet.workloads.federated import load_data, model_factory

    scenario = load_scenario(SCENARIOS / MEGA, overrides)
    workload = scenario.workload
    dims = load_data(workload.data, scenario.seed).feature_dims()
    options = ", ".join(f"{k} {v}" for k, v in workload.model.options.items())
    return f"scenario MulT ({options})", model_factory(workload.model, dims)()


def table5(models: dict[str, MulT], paper: dict[str, Any]) -> pd.DataFrame:
    """``model, module, global_mb, adapter_mb, paper_global_mb, paper_adapter_mb`` for
    each of ``models`` (label → MulT)."""
    printed = paper["table5"]["rows"]
    rows = [[label, kind, g, a, *printed[kind]]
            for label, model in models.items() for kind, g, a in sizes(model)]  # fmt: skip
    columns = ["model", "module", "global_mb", "adapter_mb", "paper_global_mb",
               "paper_adapter_mb"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def paper_sized() -> MulT:
    """MulT's defaults at MOSEI's feature sizes, on the meta device (sizes only)."""
    with torch.device("meta"):
        return MulT(PAPER_DIMS, 1)


def personalisation(table: pd.DataFrame) -> pd.DataFrame:
    """``edge, metric, global, personalised, gain``: each edge's final scores of its base
    model and its personalised model on its held-out samples, mean over the seeds (acc2
    and f1 in percent; gain = personalised − global)."""
    pattern = re.compile(r"^personalisation\.([^.]+)\.global\.([^.]+)$")
    found = [(m[1], m[2]) for c in table.columns if (m := pattern.match(c))]
    columns = [f"personalisation.{e}.{w}.{k}" for e, k in found for w in ("global", "personalised")]
    stats = _stats(table.assign(label="all"), columns)
    rows = []
    for edge, metric in found:
        scale = PERCENT.get(metric, 1.0)
        pair = [stats.get(("all", f"personalisation.{edge}.{w}.{metric}"), (None, None))[0]
                for w in ("global", "personalised")]  # fmt: skip
        g, p = (None if v is None else v * scale for v in pair)
        rows.append([edge, metric, g, p, None if g is None or p is None else p - g])
    return pd.DataFrame(rows, columns=["edge", "metric", "global", "personalised", "gain"])


def claims(t2: pd.DataFrame, t3: pd.DataFrame, t4: pd.DataFrame, t5: pd.DataFrame,
           gains: pd.DataFrame, paper: dict[str, Any]) -> list[Claim]:  # fmt: skip
    """The paper's claims, decided on our numbers."""
    out = []
    score = t2.set_index(["model", "metric"]).ours
    for baseline in BASELINES:
        for metric, check, sign in (("acc2", at_least, "≥"), ("mae", at_most, "≤")):
            ours, theirs = (pd.Series({baseline: score.get((m, metric))})
                            for m in ("Mega-CE2", baseline))  # fmt: skip
            out.append(check(f"Mega-CE² {metric} {sign} {baseline}", ours, theirs))
    acc2 = t4[t4.metric == "acc2"].set_index("variant").ours
    variants = [v for v in acc2.index if v != "full"]
    full = pd.Series({v: acc2.get("full") for v in variants})
    out.append(at_least("full MulT acc2 ≥ every ablation variant", full, acc2[variants]))
    unimodal = acc2[list(ABLATIONS["modalities"])]
    best = None if unimodal.isna().any() else unimodal.idxmax()
    out.append(Claim("text-only is the best unimodal variant (acc2)",
                     None if best is None else best == "text-only",
                     "a number is missing" if best is None else f"best: {best}"))  # fmt: skip
    total = t3[t3.stage == "end_to_end"].set_index("deployment").ours_s
    edge, cloud = total.get("Mega-CE2"), total.get("Cloud-Only")
    out.append(at_most(f"edge end-to-end latency < cloud-only (paper: −"
                       f"{paper['claims']['latency_reduction']:.1%})",
                       pd.Series({"end_to_end": edge}), pd.Series({"end_to_end": cloud}),
                       strict=True))  # fmt: skip
    trainable = t5[t5.module == "trainable"].set_index("model")
    share = trainable.adapter_mb / trainable.global_mb
    limit = paper["claims"]["adapter_share_max"]
    out.append(Claim(f"adapter < {limit:.0%} of the global model's parameters",
                     bool((share < limit).all()),
                     "; ".join(f"{m}: {s:.2%}" for m, s in share.items())))  # fmt: skip
    acc = gains[gains.metric == "acc2"].set_index("edge")
    out.append(at_least("personalised acc2 ≥ global on every edge", acc.personalised,
                        acc["global"]))  # fmt: skip
    return out


def reproduce(
    out: Path, settings: Settings, workers: int = 1, backend: str = "pool",
    progress: bool = True,
) -> Reproduction:  # fmt: skip
    """Run (or resume) every block into ``out``; write ``table2.csv`` … ``table5.csv``,
    ``personalisation.csv``, ``personalisation.png`` and ``report.md``; return them."""
    paper = paper_data("mega_ce2")
    all_blocks = blocks(settings)
    results = run_blocks(out, all_blocks, workers, backend, progress,
                         SECONDS_PER_RUN[settings.quick])  # fmt: skip
    label, model = scenario_model(list(all_blocks[0].fixed))
    t2, t3, t4 = table2(results, paper), table3(results, paper), table4(results, paper)
    t5 = table5({label: model, "paper-sized MulT (defaults, MOSEI sizes)": paper_sized()}, paper)
    gains = personalisation(results["mega-ce2"])
    from simnet.reproduce.figures import personalisation_figure

    figures = personalisation_figure(gains, out / "personalisation")
    tables = {"table2.csv": t2, "table3.csv": t3, "table4.csv": t4, "table5.csv": t5,
              "personalisation.csv": gains}  # fmt: skip
    views = {
        "Table 2, CMU-MOSEI (ours / paper; acc2 and F1 in %)": side_by_side(t2, ["model"]),
        "Table 3, seconds per request (ours / paper)": side_by_side(
            t3.rename(columns=LONG), ["stage"], "deployment", ".4g"
        ),
        "Table 4, ablation (ours / paper; acc2 and F1 in %)": side_by_side(t4, ["variant"]),
        "Table 5, parameter sizes (MB = 10⁶ bytes)": t5,
        "Personalisation: each edge's base model vs base + adapter, on its test samples": gains,
    }
    sources = [paper[t]["source"] for t in ("table2", "table3", "table4", "table5")]
    sources += [
        paper["table3"]["note"],
        "Not implemented in this simnet (ours empty): MCTN, RAVEN, V2EM.",
        "Units: acc2 (binary accuracy, non-zero labels) and F1 (weighted) in percent as in "
        "the paper; MAE in label units; latency in virtual seconds; sizes in MB of 10⁶ bytes "
        "(float32 parameters, 4 bytes each).",
    ]
    return Reproduction.write(out, "Mega-CE²", tables, claims(t2, t3, t4, t5, gains, paper),
                              figures, views, sources)  # fmt: skip
