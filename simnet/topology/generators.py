"""Generated topologies, returned in the topology file format of docs/design.md.

* ``tree``: ``clouds`` clouds (fully meshed), ``edges`` edges (edge ``e`` attaches to
  cloud ``e % clouds``), ``ends_per_edge`` ends per edge (numbered globally, edge-major:
  end ``i`` belongs to edge ``i // ends_per_edge``). Ids ``cloud0…``, ``edge0…``, ``end0…``.
  Optional ``end_classes`` make the ends heterogeneous: each class has an integer
  ``weight``, and a ``flops`` and/or an end-edge ``link`` of its own; the classes are
  dealt to the ends in a fixed interleaved pattern of ``Σ weight`` ends (a class of
  weight w every ``Σ weight / w`` ends), so every edge gets the mix.
* ``star``: a ``center`` node and ``leaves`` leaf nodes ``leaf0…``.

Links are written lower tier first, so "up" always points towards the cloud.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simnet.config.validation import parse
from simnet.topology.schema import LinkParams, Profiles

Tier = Literal["end", "edge", "cloud"]


class TreeLinks(BaseModel):
    """Link spec per link class of a tree (latency in ms, bandwidth in Mbit/s)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    end_edge: LinkParams = Field(
        default_factory=lambda: LinkParams(latency_ms=5, bandwidth_mbps=20), alias="end-edge"
    )
    edge_cloud: LinkParams = Field(
        default_factory=lambda: LinkParams(latency_ms=30, bandwidth_mbps=100), alias="edge-cloud"
    )
    cloud_cloud: LinkParams = Field(
        default_factory=lambda: LinkParams(latency_ms=10, bandwidth_mbps=1000), alias="cloud-cloud"
    )


class EndClass(BaseModel):
    """A kind of end device of a tree: its share ``weight``, device ``profile``, FLOP/s
    and end-edge link (left out: the tree's ``profiles.end`` and ``links.end-edge``)."""

    model_config = ConfigDict(extra="forbid")

    weight: int = Field(default=1, ge=1)
    profile: str | None = None
    flops: float | None = Field(default=None, gt=0)
    link: LinkParams | None = None


class TreeSpec(BaseModel):
    """``{generate: tree, clouds, edges, ends_per_edge, profiles, links, end_classes}``."""

    model_config = ConfigDict(extra="forbid")

    clouds: int = Field(default=1, ge=1)
    edges: int = Field(ge=1)
    ends_per_edge: int = Field(ge=0)
    profiles: Profiles = Field(default_factory=Profiles)
    links: TreeLinks = Field(default_factory=TreeLinks)
    end_classes: list[EndClass] = Field(default_factory=lambda: [EndClass()], min_length=1)

    def class_pattern(self) -> list[EndClass]:
        """The classes of ``Σ weight`` consecutive ends: class k's w_k slots at
        (j + ½) / w_k, j < w_k, in order of those positions (ties: class order)."""
        slots = sorted(
            ((j + 0.5) / c.weight, k) for k, c in enumerate(self.end_classes)
            for j in range(c.weight)
        )  # fmt: skip
        return [self.end_classes[k] for _, k in slots]


class StarSpec(BaseModel):
    """``{generate: star, leaves, center_tier, leaf_tier, link, profiles}``."""

    model_config = ConfigDict(extra="forbid")

    leaves: int = Field(ge=1)
    center_tier: Tier = "edge"
    leaf_tier: Tier = "end"
    link: LinkParams = Field(default_factory=lambda: LinkParams(latency_ms=5, bandwidth_mbps=20))
    profiles: Profiles = Field(default_factory=Profiles)


def tree(spec: dict[str, Any], source: str) -> dict[str, Any]:
    """A three-tier tree topology (see the module docstring)."""
    cfg = parse(TreeSpec, spec, source)
    clouds = [f"cloud{c}" for c in range(cfg.clouds)]
    edges = [f"edge{e}" for e in range(cfg.edges)]
    ends = [f"end{i}" for i in range(cfg.edges * cfg.ends_per_edge)]
    nodes = [cfg.profiles.node(n, "cloud") for n in clouds]
    nodes += [cfg.profiles.node(n, "edge") for n in edges]
    pattern = cfg.class_pattern()
    kinds = [pattern[i % len(pattern)] for i in range(len(ends))]
    nodes += [
        cfg.profiles.node(n, "end", kind.flops, kind.profile)
        for n, kind in zip(ends, kinds, strict=True)
    ]
    links = [
        cfg.links.cloud_cloud.between(a, b) for i, a in enumerate(clouds) for b in clouds[i + 1 :]
    ]
    links += [cfg.links.edge_cloud.between(e, clouds[i % cfg.clouds]) for i, e in enumerate(edges)]
    links += [
        (kind.link or cfg.links.end_edge).between(end, edges[i // cfg.ends_per_edge])
        for i, (end, kind) in enumerate(zip(ends, kinds, strict=True))
    ]
    return {"nodes": nodes, "links": links}


def star(spec: dict[str, Any], source: str) -> dict[str, Any]:
    """A star: one center, ``leaves`` leaves, every link alike (see the module docstring)."""
    cfg = parse(StarSpec, spec, source)
    leaves = [f"leaf{i}" for i in range(cfg.leaves)]
    nodes = [cfg.profiles.node("center", cfg.center_tier)]
    nodes += [cfg.profiles.node(n, cfg.leaf_tier) for n in leaves]
    return {"nodes": nodes, "links": [cfg.link.between(n, "center") for n in leaves]}
