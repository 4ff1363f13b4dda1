"""Workloads a scenario can run, by ``workload.kind``."""

from __future__ import annotations

from simnet.workloads import federated, mlecs, traffic
from simnet.workloads.base import WorkloadKind

WORKLOADS: dict[str, WorkloadKind] = {
    "traffic": WorkloadKind(traffic.TrafficConfig, traffic.check, traffic.TrafficRun),
    "federated": WorkloadKind(federated.FederatedConfig, federated.check, federated.FederatedRun),
    "mlecs": WorkloadKind(mlecs.MlecsConfig, mlecs.check, mlecs.MlecsRun),
}
