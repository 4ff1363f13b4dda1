"""Overrides addressed to a class of links: ``topology.links[edge-cloud].bandwidth_mbps=5``.

A link's class is the tier pair of its ends, lower tier first (``end-edge``,
``edge-cloud``, …). Fields: ``bandwidth_mbps`` (both directions), ``up_mbps``,
``down_mbps`` (Mbit/s) and ``latency_ms`` (ms). They apply to every link of the class,
after the topology is loaded, whatever its form (file, inline, generator, GraphML); the
result is validated like a hand-written topology.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from simnet.errors import InputError
from simnet.topology.graph import Topology
from simnet.topology.load import topology_from_dict

PATTERN = re.compile(r"^topology\.links\[([^\]]+)\]\.(\w+)$")
FIELDS = ("bandwidth_mbps", "up_mbps", "down_mbps", "latency_ms")


@dataclass(frozen=True)
class LinkOverride:
    """Set ``field`` of every link of class ``link_class`` to ``value``."""

    link_class: str
    field: str
    value: Any
    key: str


def split(pairs: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], list[LinkOverride]]:
    """Separate link-class overrides from ordinary ``(dotted.key, value)`` ones."""
    plain, links = [], []
    for key, value in pairs:
        match = PATTERN.match(key)
        if match is None:
            plain.append((key, value))
            continue
        link_class, field = match.groups()
        if field not in FIELDS:
            raise InputError("--set", key, f"a link field is one of {', '.join(FIELDS)}")
        links.append(LinkOverride(link_class, field, value, key))
    return plain, links


def is_link_key(key: str) -> bool:
    """Whether ``key`` addresses a class of links (``topology.links[CLASS].FIELD``)."""
    return PATTERN.match(key) is not None


def apply(topology: Topology, overrides: list[LinkOverride], source: str) -> Topology:
    """``topology`` with ``overrides`` applied (``InputError`` for an absent class)."""
    if not overrides:
        return topology
    data = topology.to_dict()
    classes = {topology.link_class(link["a"], link["b"]) for link in data["links"]}
    for override in overrides:
        if override.link_class not in classes:
            known = ", ".join(sorted(classes))
            raise InputError(
                "--set", override.key, f"no link of class {override.link_class} (has: {known})"
            )
        for link in data["links"]:
            if topology.link_class(link["a"], link["b"]) != override.link_class:
                continue
            if override.field in ("up_mbps", "down_mbps") and "bandwidth_mbps" in link:
                link["up_mbps"] = link["down_mbps"] = link.pop("bandwidth_mbps")
            if override.field == "bandwidth_mbps":
                link.pop("up_mbps", None)
                link.pop("down_mbps", None)
            link[override.field] = override.value
    return topology_from_dict(data, source)
