"""Import a GraphML file (e.g. from the Internet Topology Zoo) into the topology format.

Attribute mapping (all optional; ``{graphml: FILE, ...}`` in a scenario):

* node ids: the GraphML id, or the node attribute ``node_id_attr`` (e.g. ``label``);
* tiers: the node attribute ``tier_attr``, else ``default_tier``; ``tiers`` overrides
  single nodes by (mapped) id;
* compute: a node attribute ``flops`` (FLOP/s), else the tier's ``profiles`` entry;
* latency (ms): the edge attribute ``latency_ms_attr``; else, if both ends have
  ``Latitude``/``Longitude``, the great-circle distance at 200,000 km/s (light in fibre,
  ``ms = km / 200``); else ``latency_ms_default``;
* bandwidth (Mbit/s): the edge attribute ``bandwidth_attr`` × ``bandwidth_scale``
  (default ``LinkSpeedRaw`` in bit/s × 10⁻⁶), else ``bandwidth_mbps_default``.

Parallel edges are merged into one link (bandwidths added, lowest latency kept);
self-loops are ignored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import ParseError

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from simnet.errors import InputError
from simnet.topology.schema import Profiles
from simnet.validation import parse

EARTH_RADIUS_KM = 6371.0
FIBRE_KM_PER_MS = 200.0
"""Propagation speed in optical fibre: 2·10⁵ km/s = 200 km per millisecond."""


class GraphmlSpec(BaseModel):
    """How GraphML attributes map onto simnet nodes and links."""

    model_config = ConfigDict(extra="forbid")

    node_id_attr: str | None = None
    tier_attr: str | None = None
    default_tier: Literal["end", "edge", "cloud"] = "edge"
    tiers: dict[str, Literal["end", "edge", "cloud"]] = Field(default_factory=dict)
    profiles: Profiles = Field(default_factory=Profiles)
    latency_ms_attr: str | None = None
    latency_from_coordinates: bool = True
    latency_ms_default: float = Field(default=1.0, ge=0)
    bandwidth_attr: str = "LinkSpeedRaw"
    bandwidth_scale: float = Field(default=1e-6, gt=0)
    bandwidth_mbps_default: float = Field(default=1000.0, gt=0)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _read(path: Path, source: str) -> nx.MultiGraph:
    if not path.is_file():
        raise InputError(source, "graphml", f"file not found: {path}")
    try:
        graph = nx.read_graphml(path, force_multigraph=True)
    except (ParseError, nx.NetworkXError, KeyError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, "graphml", f"cannot read {path}: {first}") from None
    return nx.MultiGraph(graph)


def _latency_ms(cfg: GraphmlSpec, attrs: dict[str, Any], na: dict, nb: dict) -> float:
    if cfg.latency_ms_attr and cfg.latency_ms_attr in attrs:
        return float(attrs[cfg.latency_ms_attr])
    coords = ("Latitude", "Longitude")
    if cfg.latency_from_coordinates and all(k in n for k in coords for n in (na, nb)):
        km = great_circle_km(na["Latitude"], na["Longitude"], nb["Latitude"], nb["Longitude"])
        return km / FIBRE_KM_PER_MS
    return cfg.latency_ms_default


def from_graphml(path: Path, spec: dict[str, Any], source: str) -> dict[str, Any]:
    """The topology-format dict of a GraphML file (see the module docstring)."""
    cfg = parse(GraphmlSpec, spec, source)
    graph = _read(Path(path), source)
    ids: dict[Any, str] = {}
    for key, attrs in graph.nodes(data=True):
        name = str(attrs.get(cfg.node_id_attr, key)) if cfg.node_id_attr else str(key)
        if name in ids.values():
            field = "node_id_attr" if cfg.node_id_attr else "graphml"
            raise InputError(source, field, f"two nodes would both be called {name!r}")
        ids[key] = name
    for name in cfg.tiers:
        if name not in ids.values():
            raise InputError(source, f"tiers.{name}", f"no node {name!r} in {path}")
    nodes = []
    for key, attrs in graph.nodes(data=True):
        tier = cfg.tiers.get(ids[key]) or str(attrs.get(cfg.tier_attr or "", cfg.default_tier))
        flops = float(attrs["flops"]) if "flops" in attrs else None
        nodes.append(cfg.profiles.node(ids[key], tier, flops))
    merged: dict[frozenset[str], dict[str, Any]] = {}
    for u, v, attrs in graph.edges(data=True):
        if u == v:
            continue
        a, b = ids[u], ids[v]
        latency = _latency_ms(cfg, attrs, graph.nodes[u], graph.nodes[v])
        raw = attrs.get(cfg.bandwidth_attr)
        mbps = float(raw) * cfg.bandwidth_scale if raw else cfg.bandwidth_mbps_default
        link = merged.get(frozenset((a, b)))
        if link is None:
            merged[frozenset((a, b))] = {
                "a": a,
                "b": b,
                "latency_ms": latency,
                "bandwidth_mbps": mbps,
            }
        else:
            link["latency_ms"] = min(link["latency_ms"], latency)
            link["bandwidth_mbps"] += mbps
    return {"nodes": nodes, "links": list(merged.values())}
