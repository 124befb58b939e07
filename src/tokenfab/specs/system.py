"""SystemSpec: how chips are connected — scale-up domain and scale-out network."""

from __future__ import annotations

from pydantic import Field

from tokenfab.specs.base import Spec


class SystemSpec(Spec):
    """Links between chips; defaults come from the chip's standard system."""

    chips_per_node: int = Field(default=8, ge=1)
    """Accelerators in one server."""
    scaleup_domain: int = Field(default=8, ge=1)
    """Chips reachable over the scale-up fabric (NVLink domain, ICI slice, supernode)."""
    scaleup_gb_s: float = Field(gt=0)
    """Scale-up bandwidth per chip, GB/s one direction."""
    scaleout_gb_s: float = Field(default=50.0, gt=0)
    """Scale-out bandwidth per chip, GB/s one direction."""
    scaleup_full_mesh: bool = False
    """The scale-up domain is a full mesh of point-to-point links (the chip's `is_full_mesh`): a
    group of p chips inside it uses p − 1 of each chip's domain − 1 links."""
    scaleup_latency_us: float = Field(default=3.0, ge=0)
    """Per-step latency of a collective inside the scale-up domain, µs (alpha)."""
    scaleout_latency_us: float = Field(default=10.0, ge=0)
    """Per-step latency of a collective across the scale-out network, µs."""

    @classmethod
    def for_chip(cls, chip) -> "SystemSpec":
        """The chip's standard system (its catalog domain size and link bandwidths)."""
        return cls(
            chips_per_node=min(8, chip.scaleup_domain), scaleup_domain=chip.scaleup_domain,
            scaleup_gb_s=chip.scaleup_gb_s, scaleout_gb_s=chip.scaleout_gb_s,
            scaleup_full_mesh=chip.is_full_mesh,
        )
