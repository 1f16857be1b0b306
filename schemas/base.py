"""The one policy every wire model shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Base of every model that crosses a process boundary.

    Frozen, so a received message cannot be edited by accident; unknown fields are
    ignored, so an older consumer keeps working when a producer adds a field.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)
