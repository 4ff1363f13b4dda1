"""The topology file format of docs/design.md, validated with pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simnet.topology.graph import TIERS

DEFAULT_FLOPS = {"end": 5.0e10, "edge": 2.0e12, "cloud": 5.0e13}
"""FLOP/s of a node whose file gives none, by tier."""


class PowerConfig(BaseModel):
    """``{idle_w, busy_w, tx_w, rx_w}``: watts in each state (docs/energy.md); left out: 0."""

    model_config = ConfigDict(extra="forbid")

    idle_w: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    busy_w: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    tx_w: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    rx_w: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class NodeConfig(BaseModel):
    """``{id, tier, flops, slots, power}``: FLOP/s, how many jobs run at once, watts in
    each state (a ``profile`` is expanded before validation: ``simnet.topology.profiles``)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    tier: str
    flops: float | None = Field(default=None, gt=0)
    slots: int = Field(default=1, ge=1)
    power: PowerConfig = Field(default_factory=PowerConfig)

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, tier: str) -> str:
        if tier not in TIERS:
            raise ValueError(f"must be one of {', '.join(TIERS)}")
        return tier

    @model_validator(mode="after")
    def _default_flops(self) -> NodeConfig:
        if self.flops is None:
            self.flops = DEFAULT_FLOPS[self.tier]
        return self


class LinkParams(BaseModel):
    """``{latency_ms, bandwidth_mbps}``; ``up_mbps``/``down_mbps`` override per direction."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(ge=0)
    bandwidth_mbps: float | None = Field(default=None, gt=0)
    up_mbps: float | None = Field(default=None, gt=0)
    down_mbps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bandwidth_given(self) -> LinkParams:
        if self.bandwidth_mbps is None and (self.up_mbps is None or self.down_mbps is None):
            raise ValueError("give bandwidth_mbps, or both up_mbps and down_mbps")
        return self

    @property
    def up(self) -> float:
        """Mbit/s from ``a`` (the lower tier) to ``b``."""
        return self.up_mbps if self.up_mbps is not None else self.bandwidth_mbps  # type: ignore[return-value]

    @property
    def down(self) -> float:
        """Mbit/s from ``b`` to ``a``."""
        return self.down_mbps if self.down_mbps is not None else self.bandwidth_mbps  # type: ignore[return-value]

    def between(self, a: str, b: str) -> dict[str, Any]:
        """A link of the topology file format joining ``a`` to ``b`` with this spec."""
        return {
            "a": a,
            "b": b,
            "latency_ms": self.latency_ms,
            "up_mbps": self.up,
            "down_mbps": self.down,
        }


class LinkConfig(LinkParams):
    """A link of a topology file: ``{a, b}`` plus a :class:`LinkParams`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    a: str
    b: str

    @model_validator(mode="after")
    def _two_ends(self) -> LinkConfig:
        if self.a == self.b:
            raise ValueError(f"a link must join two different nodes (got {self.a!r} twice)")
        return self


class TierProfile(BaseModel):
    """What generated nodes of a tier get: a device ``profile``, FLOP/s and slots (an
    explicit ``flops`` wins over the profile's)."""

    model_config = ConfigDict(extra="forbid")

    profile: str | None = None
    flops: float | None = Field(default=None, gt=0)
    slots: int = Field(default=1, ge=1)


class Profiles(BaseModel):
    """Per-tier :class:`TierProfile` s for generators and imports."""

    model_config = ConfigDict(extra="forbid")

    end: TierProfile = Field(default_factory=TierProfile)
    edge: TierProfile = Field(default_factory=TierProfile)
    cloud: TierProfile = Field(default_factory=TierProfile)

    def node(
        self, node_id: str, tier: str, flops: float | None = None, profile: str | None = None
    ) -> dict[str, Any]:
        """A node of the topology file format. An explicit ``flops`` wins over the tier's;
        an explicit ``profile`` over the tier's ``flops`` and ``profile`` (no FLOP/s from
        anywhere: the tier's default)."""
        spec: TierProfile = getattr(self, tier)
        node: dict[str, Any] = {"id": node_id, "tier": tier}
        device = profile or spec.profile
        if flops is None and not profile:
            flops = spec.flops
        if flops is not None or not device:
            node["flops"] = flops or DEFAULT_FLOPS[tier]
        node["slots"] = spec.slots
        if device:
            node["profile"] = device
        return node


class TopologyConfig(BaseModel):
    """A whole topology file: ``nodes`` and ``links``."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeConfig] = Field(min_length=1)
    links: list[LinkConfig] = Field(default_factory=list)
