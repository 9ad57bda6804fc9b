"""The flag record the load flags share (`training.flags`, `training.unloaded_rides`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """A flag: what to look at, why, and where the threshold comes from.

    Attributes:
        code: stable machine name (module docstring table).
        message: one or two plain sentences with the figures.
        source: where the threshold comes from.
        value: the figure that fired (units of the measure), or None.
        threshold: the threshold it crossed, or None.
    """

    code: str
    message: str
    source: str
    value: float | None = None
    threshold: float | None = None
    details: tuple[dict[str, Any], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message", "source", "value", "threshold"}``, plus ``"details"`` (a list) when set."""
        out = asdict(self)
        if self.details is None:
            del out["details"]
        else:
            out["details"] = list(self.details)
        return out
