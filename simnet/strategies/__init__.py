"""Aggregation strategies: how a node merges its clients' updates and picks the clients
of a round. Built-ins by name (:data:`BUILTINS`); your own as ``module:Class``, a
subclass of :class:`Strategy`."""

from simnet.strategies.base import State, Strategy, Update
from simnet.strategies.fedasync import FedAsync
from simnet.strategies.fedavg import MMA, FedAvg
from simnet.strategies.fedbuff import FedBuff

BUILTINS: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedasync": FedAsync,
    "fedbuff": FedBuff,
    "mma": MMA,
}
"""Strategies a scenario names without a ``:``."""

__all__ = ["BUILTINS", "MMA", "FedAsync", "FedAvg", "FedBuff", "State", "Strategy", "Update"]
