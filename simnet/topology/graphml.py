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
self-loops are ignored. In a directed file, the arcs ``a→b`` make the up bandwidth and
``b→a`` the down one (summed likewise); a pair with arcs one way only is symmetric.
A missing or empty attribute falls back to its default; a value that is not a number
(or a bandwidth ≤ 0, a latency < 0, an unknown tier) is an
:class:`~simnet.errors.InputError` naming the node or edge.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import ParseError

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from simnet.config.validation import parse
from simnet.errors import InputError
from simnet.topology.graph import TIERS
from simnet.topology.schema import Profiles

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


def _read(path: Path, source: str) -> nx.MultiGraph | nx.MultiDiGraph:
    """The GraphML file as a multigraph (directed if the file is)."""
    if not path.is_file():
        raise InputError(source, "graphml", f"file not found: {path}")
    try:
        graph = nx.read_graphml(path, force_multigraph=True)
    except (ParseError, nx.NetworkXError, KeyError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, "graphml", f"cannot read {path}: {first}") from None
    return graph


def _number(value: Any, source: str, field: str, what: str) -> float | None:
    """``value`` as a finite float; ``None`` when missing or empty, else an InputError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InputError(source, field, f"{what} is not a number (got {value!r})")
    return number


def _latency_ms(
    cfg: GraphmlSpec, attrs: dict[str, Any], na: dict, nb: dict, source: str, what: str
) -> float:
    """Latency in ms of one GraphML edge: attribute, else coordinates, else the default."""
    if cfg.latency_ms_attr:
        label = f"{what}: {cfg.latency_ms_attr}"
        latency = _number(attrs.get(cfg.latency_ms_attr), source, "latency_ms_attr", label)
        if latency is not None:
            if latency < 0:
                raise InputError(
                    source, "latency_ms_attr", f"{label} must be >= 0 (got {latency:g})"
                )
            return latency
    coords = ("Latitude", "Longitude")
    if cfg.latency_from_coordinates and all(k in n for k in coords for n in (na, nb)):
        lat1, lon1, lat2, lon2 = (
            _number(n[k], source, "graphml", f"{what}: an end's {k}")
            for n in (na, nb)
            for k in coords
        )
        if lat1 is not None and lon1 is not None and lat2 is not None and lon2 is not None:
            return great_circle_km(lat1, lon1, lat2, lon2) / FIBRE_KM_PER_MS
    return cfg.latency_ms_default


def _bandwidth_mbps(cfg: GraphmlSpec, attrs: dict[str, Any], source: str, what: str) -> float:
    """Bandwidth in Mbit/s of one GraphML edge: attribute × scale, else the default."""
    what = f"{what}: {cfg.bandwidth_attr}"
    raw = _number(attrs.get(cfg.bandwidth_attr), source, "bandwidth_attr", what)
    if raw is None:
        return cfg.bandwidth_mbps_default
    if raw <= 0:
        raise InputError(source, "bandwidth_attr", f"{what} must be > 0 (got {raw:g})")
    return raw * cfg.bandwidth_scale


def from_graphml(path: Path, spec: dict[str, Any], source: str) -> dict[str, Any]:
    """The topology-format dict of a GraphML file (see the module docstring)."""
    cfg = parse(GraphmlSpec, spec, source)
    graph = _read(Path(path), source)
    ids: dict[Any, str] = {}
    taken: set[str] = set()
    for key, attrs in graph.nodes(data=True):
        name = str(attrs.get(cfg.node_id_attr, key)) if cfg.node_id_attr else str(key)
        if name in taken:
            field = "node_id_attr" if cfg.node_id_attr else "graphml"
            raise InputError(source, field, f"two nodes would both be called {name!r}")
        ids[key] = name
        taken.add(name)
    for name in cfg.tiers:
        if name not in taken:
            raise InputError(source, f"tiers.{name}", f"no node {name!r} in {path}")
    nodes = []
    for key, attrs in graph.nodes(data=True):
        name = ids[key]
        tier = cfg.tiers.get(name) or str(attrs.get(cfg.tier_attr or "", cfg.default_tier))
        if tier not in TIERS:
            known = ", ".join(TIERS)
            message = f"node {name!r} has tier {tier!r}; must be one of {known}"
            raise InputError(source, "tier_attr", message)
        flops = _number(attrs.get("flops"), source, "graphml", f"node {name!r}: flops")
        if flops is not None and flops <= 0:
            raise InputError(source, "graphml", f"node {name!r}: flops must be > 0 (got {flops:g})")
        nodes.append(cfg.profiles.node(name, tier, flops))
    return {"nodes": nodes, "links": _links(cfg, graph, ids, source)}


def _links(
    cfg: GraphmlSpec, graph: nx.MultiGraph, ids: dict[Any, str], source: str
) -> list[dict[str, Any]]:
    """One link per node pair: parallel edges merged, self-loops dropped.

    In a directed file the arcs ``a→b`` give the up bandwidth and ``b→a`` the down one
    (a pair with arcs one way only is symmetric).
    """
    merged: dict[frozenset[str], dict[str, Any]] = {}
    for u, v, attrs in graph.edges(data=True):
        if u == v:
            continue
        a, b = ids[u], ids[v]
        what = f"edge {a!r}-{b!r}"
        latency = _latency_ms(cfg, attrs, graph.nodes[u], graph.nodes[v], source, what)
        mbps = _bandwidth_mbps(cfg, attrs, source, what)
        link = merged.setdefault(
            frozenset((a, b)), {"a": a, "b": b, "latency_ms": latency, "up": 0.0, "down": 0.0}
        )
        link["latency_ms"] = min(link["latency_ms"], latency)
        forward = not graph.is_directed() or link["a"] == a
        link["up" if forward else "down"] += mbps
    links = []
    for link in merged.values():
        up, down = link.pop("up"), link.pop("down")
        if up and down and up != down:
            link.update(up_mbps=up, down_mbps=down)
        else:
            link["bandwidth_mbps"] = up or down
        links.append(link)
    return links
