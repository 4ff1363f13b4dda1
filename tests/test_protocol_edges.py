"""Protocol edge cases: an end whose features' delivery gave up sends them again."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_federated import rows, scenario

from simnet.config.scenario import load_scenario
from simnet.runner import run_scenario


def test_an_end_whose_features_gave_up_sends_them_with_its_next_model(tmp_path: Path) -> None:
    """end0's link is down from 0 s to 0.5 s: its features (sent at 0.06 s, resent once)
    give up. The edge starts without them; when end0 gets its first model it delivers
    them (the old code marked them sent and never tried again), then trains."""
    path = scenario(
        tmp_path,
        data={"train": 120, "valid": 20, "test": 60},
        end={"training": {"epochs": 1}},
        edge={"deadline_s": 1.0},
        cloud={"mode": "async", "updates": 6, "deadline_s": 1.0},
    )
    data = yaml.safe_load(path.read_text())
    link = {"a": "end0", "b": "edge0"}
    data["network"] = {"events": [{"at": 0.0, **link, "state": "down"},
                                  {"at": 0.5, **link, "state": "up"}]}  # fmt: skip
    data["faults"] = {"retry": {"timeout_s": 0.1, "attempts": 1}}
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    summary = run_scenario(load_scenario(path), out, progress=False, figures=False)
    assert summary["complete"], summary.get("incomplete_reason")
    assert summary["faults"]["gave_up"] == 1
    messages = rows(out / "messages.csv")
    features = [m for m in messages if m["kind"] == "features" and m["src"] == "end0"]
    assert [m["status"] for m in features] == ["dropped", "dropped", "delivered"]
    first_model = next(m for m in messages if m["kind"] == "model" and m["dst"] == "end0")
    assert features[-1]["t_send"] == first_model["t_recv"]  # before training on it
    updates = [m for m in messages if m["kind"] == "end_update" and m["src"] == "end0"]
    assert updates and all(m["status"] == "delivered" for m in updates)
    assert float(updates[0]["t_send"]) > float(features[-1]["t_recv"])
