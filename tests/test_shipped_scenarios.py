"""Every scenario and sweep file shipped in scenarios/ passes the checks a run makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simnet.config.scenario import load_scenario
from simnet.sweeps import load_sweep

FILES = sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))


def test_the_folder_holds_the_documented_files():
    listed = (FILES[0].parent / "README.md").read_text()
    assert len(FILES) >= 14
    assert all(f"`{path.name}`" in listed for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_shipped_file_validates(path):
    if "base" in yaml.safe_load(path.read_text()):
        assert load_sweep(path).points()
    else:
        assert load_scenario(path).topology.nodes
