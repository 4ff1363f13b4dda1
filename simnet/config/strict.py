"""The base of every strict configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A pydantic model in which unknown fields are errors (``extra="forbid"``), so a
    misspelt key in a scenario file is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid")
