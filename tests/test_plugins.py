"""Models and data plugged in as module:Class / module:function, and model_parameters."""

from __future__ import annotations

import subprocess
import sys

from test_federated import scenario

import simnet
from learning.models import EFLSTM

USER = '''
from learning.data import mosei_like
from learning.models import EFLSTM


class Small(EFLSTM):
    """The user's own model: an early-fusion LSTM of a chosen width."""

    def __init__(self, feature_dims, out_dim, width=6):
        super().__init__(feature_dims, out_dim, hidden=width)


def my_data(seed, n=160):
    return mosei_like(n, 30, 60, 5, seed=seed)


def not_data(seed):
    return [1, 2, 3]
'''


def test_a_user_model_and_dataset_run_and_count_their_parameters(tmp_path):
    (tmp_path / "user.py").write_text(USER)
    path = scenario(
        tmp_path, cloud={"updates": 2},
        model={"name": "./user.py:Small", "options": {"width": 5}},
        data={"source": "./user.py:my_data", "options": {"n": 120}},
    )  # fmt: skip
    result = simnet.run(path, out=tmp_path / "run", progress=False, figures=False)
    assert result.complete
    dims = {"text": 300, "audio": 74, "vision": 35}  # mosei_like's feature sizes
    expected = sum(p.numel() for p in EFLSTM(dims, 1, hidden=5).parameters())
    assert result.summary["model_parameters"] == expected
    end_updates = result.messages[result.messages["kind"] == "end_update"]
    assert (end_updates["bytes"] > expected * 4).all()  # the user's model crossed the wire


def test_built_in_models_report_their_trainable_parameters(tmp_path):
    result = simnet.run(scenario(tmp_path, cloud={"updates": 1}), out=tmp_path / "run",
                        progress=False, figures=False)  # fmt: skip
    from learning.models import MulT

    dims = {"text": 300, "audio": 74, "vision": 35}
    mult = MulT(dims, 1, width=8, layers=1, heads=2)
    assert result.summary["model_parameters"] == sum(p.numel() for p in mult.parameters())


def test_a_data_plugin_returning_something_else_is_a_one_line_error(tmp_path):
    (tmp_path / "user.py").write_text(USER)
    path = scenario(tmp_path, data={"source": "./user.py:not_data"})
    out = subprocess.run([sys.executable, "-m", "simnet", "validate", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert (
        "workload.data" in out.stderr and "returned a list, not a MultimodalDataset" in out.stderr
    )
