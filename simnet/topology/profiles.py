"""Device profiles: ``profile: NAME`` on a topology node fills its FLOP/s, power and
typical access link from the table shipped in ``profiles.yaml`` (sources in its comments).

Fields written on the node win over the profile's, key by key (``power: {idle_w: 1}``
keeps the profile's other powers). A link that leaves out ``latency_ms`` or its
bandwidth takes them from the profile ``link`` of its end ``a`` (the lower tier, by the
file format's convention), else of its end ``b``; fields written on the link win.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from simnet.errors import InputError

LINK_FIELDS = ("latency_ms", "bandwidth_mbps", "up_mbps", "down_mbps")
"""Fields of a link a profile's ``link`` may fill."""


@cache
def profiles() -> dict[str, dict[str, Any]]:
    """The shipped table: name → ``{description, flops, power, link}``."""
    text = resources.files("simnet.topology").joinpath("profiles.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _profile(name: Any, source: str, field: str) -> dict[str, Any]:
    table = profiles()
    if not isinstance(name, str) or name not in table:
        known = ", ".join(table)
        raise InputError(source, field, f"unknown profile {name!r}; known: {known}")
    return table[name]


def with_profiles(data: Any, source: str, prefix: str = "") -> Any:
    """``data`` (a topology in the file format, not yet validated) with every node's
    ``profile`` expanded and the links' missing fields filled (see the module doc).

    Anything that is not the expected shape is passed through for validation to report.
    """
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return data
    base = f"{prefix}." if prefix else ""
    nodes, links = [], {}
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or "profile" not in node:
            nodes.append(node)
            continue
        profile = _profile(node["profile"], source, f"{base}nodes.{i}.profile")
        rest = {k: v for k, v in node.items() if k != "profile"}
        filled = {"flops": profile["flops"], **rest}
        power = rest.get("power")
        if isinstance(power, dict) or power is None:
            filled["power"] = {**profile.get("power", {}), **(power or {})}
        nodes.append(filled)
        if "link" in profile:
            links[str(node.get("id"))] = profile["link"]
    out = {**data, "nodes": nodes}
    if links and isinstance(data.get("links"), list):
        out["links"] = [_filled_link(link, links) for link in data["links"]]
    return out


def _filled_link(link: Any, defaults: dict[str, dict[str, Any]]) -> Any:
    """``link`` with the fields it leaves out taken from its ends' profile links."""
    if not isinstance(link, dict) or all(f in link for f in ("latency_ms", "bandwidth_mbps")):
        return link
    for end in ("a", "b"):
        spec = defaults.get(str(link.get(end)))
        if spec is None:
            continue
        out = dict(link)
        out.setdefault("latency_ms", spec["latency_ms"])
        given = any(f in link for f in LINK_FIELDS[1:])
        if not given:
            out.update({k: spec[k] for k in LINK_FIELDS[1:] if k in spec})
        return out
    return link
