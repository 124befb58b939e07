"""What the system around one chip costs: its share of host, power delivery, cooling and networks.

One pricing path for catalog chips and derived designs alike (all USD, per chip):

    host          = host per server / chips per host
    power         = TDP × power delivery $/W
    cooling       = TDP × (air $/W, or liquid $/W when TDP > the liquid threshold)
    NIC           = scale-out GB/s × NIC $/(GB/s)
    integration   = (host + power + cooling + NIC) × server maker's markup
    scale-out net = scale-out GB/s × (switch ports per endpoint × port $/(GB/s) + optics $/(GB/s))
    scale-up      = scale-up GB/s × fabric $/(GB/s) × reach(domain)

The scale-up fabric is `switched` (NVSwitch-class chips), `direct` (mesh, torus, bridge: no switch
chips) or `none` (cards that talk over PCIe through the host); a domain of one chip has no fabric
and a pair needs no switch. reach = 1 within one baseboard, the rack factor within one rack, the
multi-rack factor beyond. Every term is non-decreasing in TDP, in both bandwidths and in the domain
size (the spec's validator keeps the orderings that guarantee it).

An `Economics` with a flat `server_and_network_usd_per_chip` prices every chip at that number
instead (a user's override).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import Economics, ScaleupFabric, SystemCostSpec

# Words in a chip's `scaleup_interconnect` that name its fabric, checked in this order.
_NO_FABRIC = ("no nvlink",)
_DIRECT_FIRST = ("torus",)                      # TPU/Trainium tori (even with optical circuit switches)
_SWITCHED = ("switch", "non-blocking", "hgx")
_DIRECT = ("mesh", "ring", "bridge", "all-to-all", "links per chip", "infinity fabric", "direct")


def scaleup_fabric_of(interconnect: str) -> ScaleupFabric:
    """The fabric kind a chip's `scaleup_interconnect` text names; `switched` when it names none.

    `none` for PCIe-only cards ("PCIe ... (no NVLink)"), `direct` for tori, meshes, rings and
    bridges, `switched` for NVSwitch-class and non-blocking fabrics and for unknown text (the
    dearer assumption).
    """
    text = (interconnect or "").lower().strip()
    if text.startswith("pcie") or any(w in text for w in _NO_FABRIC):
        return "none"
    if any(w in text for w in _DIRECT_FIRST):
        return "direct"
    if any(w in text for w in _SWITCHED):
        return "switched"
    if any(w in text for w in _DIRECT):
        return "direct"
    return "switched"


class SystemNeeds(BaseModel):
    """What a chip asks of the system around it."""

    model_config = ConfigDict(frozen=True)

    tdp_w: float = Field(gt=0)
    """Chip power limit, W."""
    scaleout_gb_s: float = Field(default=50.0, ge=0)
    """Scale-out (NIC) bandwidth per chip, GB/s one way (ChipSpec's default: one 400G NIC)."""
    scaleup_gb_s: float = Field(default=0.0, ge=0)
    """Scale-up bandwidth per chip, GB/s one way (0: no scale-up fabric)."""
    scaleup_domain: int = Field(default=1, ge=1)
    """Chips in one scale-up domain."""
    scaleup_fabric: ScaleupFabric = "switched"
    """`switched`, `direct` or `none` (see `scaleup_fabric_of`)."""
    price_includes_system: bool = False
    """The chip's price already covers its server and scale-up fabric (rack-priced chips): only the
    scale-out network outside the rack is added."""

    @classmethod
    def of_chip(cls, chip: Any) -> "SystemNeeds":
        """The needs of a ChipSpec (catalog chip or derived design)."""
        return cls(tdp_w=chip.tdp_w, scaleout_gb_s=chip.scaleout_gb_s, scaleup_gb_s=chip.scaleup_gb_s,
                   scaleup_domain=chip.scaleup_domain,
                   scaleup_fabric=getattr(chip, "scaleup_fabric", None)
                   or scaleup_fabric_of(getattr(chip, "scaleup_interconnect", "")),
                   price_includes_system=bool(getattr(chip, "price_includes_system", False)))


class SystemCost(BaseModel):
    """One chip's share of the system around it, by part (USD)."""

    model_config = ConfigDict(frozen=True)

    basis: Literal["model", "flat"]
    """`model` (from the chip's needs) or `flat` (the economics' fixed server_and_network_usd_per_chip)."""
    host_usd: float = 0.0
    power_delivery_usd: float = 0.0
    cooling_usd: float = 0.0
    nic_usd: float = 0.0
    integration_usd: float = 0.0
    scaleout_network_usd: float = 0.0
    scaleup_fabric_usd: float = 0.0
    total_usd: float
    cooling: str = ""
    """`air` or `liquid` (empty for a flat price)."""
    scaleup_fabric: str = ""
    """Fabric kind priced: `switched`, `direct`, `none` (empty for a flat price)."""

    def parts(self) -> dict[str, float]:
        """Additive parts in display order (a flat price is one part)."""
        if self.basis == "flat":
            return {"flat": self.total_usd}
        return {"host": self.host_usd, "power_delivery": self.power_delivery_usd, "cooling": self.cooling_usd,
                "nic": self.nic_usd, "integration": self.integration_usd,
                "scaleout_network": self.scaleout_network_usd, "scaleup_fabric": self.scaleup_fabric_usd}


def system_parts_usd(spec: SystemCostSpec, tdp_w: Any, scaleout_gb_s: Any, scaleup_gb_s: Any,
                     scaleup_domain: Any, scaleup_fabric: Any = "switched") -> dict[str, Any]:
    """The parts of the system cost per chip, USD, for scalars or broadcastable arrays.

    Keys: host, power_delivery, cooling, nic, integration, scaleout_network, scaleup_fabric, total,
    liquid (bool).
    """
    tdp = np.asarray(tdp_w, dtype=float)
    out_bw = np.asarray(scaleout_gb_s, dtype=float)
    up_bw = np.asarray(scaleup_gb_s, dtype=float)
    domain = np.asarray(scaleup_domain, dtype=float)
    fabric = np.asarray(scaleup_fabric)
    if np.any(tdp <= 0) or np.any(out_bw < 0) or np.any(up_bw < 0) or np.any(domain < 1):
        raise SpecError("system cost needs TDP > 0 W, bandwidths ≥ 0 GB/s and a scale-up domain ≥ 1 chip")
    if not np.all(np.isin(fabric, ("switched", "direct", "none"))):
        raise SpecError(f"scale-up fabric must be switched, direct or none, got {scaleup_fabric!r}")

    host = np.full(np.broadcast(tdp, out_bw, up_bw, domain).shape, spec.host_usd_per_server / spec.chips_per_host)
    power = tdp * spec.power_delivery_usd_per_w
    liquid = tdp > spec.liquid_cooling_above_w
    cooling = tdp * np.where(liquid, spec.liquid_cooling_usd_per_w, spec.air_cooling_usd_per_w)
    nic = out_bw * spec.nic_usd_per_gb_s
    integration = (host + power + cooling + nic) * spec.integration_markup_frac
    network = out_bw * (spec.scaleout_switch_ports_per_endpoint * spec.scaleout_switch_port_usd_per_gb_s
                        + spec.scaleout_optics_usd_per_gb_s)
    switched = (fabric == "switched") & (domain > 2)      # a pair is wired point to point
    rate = np.where(switched, spec.scaleup_switched_usd_per_gb_s, spec.scaleup_direct_usd_per_gb_s)
    reach = np.where(domain <= spec.scaleup_board_chips, 1.0,
                     np.where(domain <= spec.scaleup_rack_chips, spec.scaleup_rack_factor,
                              spec.scaleup_multirack_factor))
    has_fabric = (fabric != "none") & (domain > 1)
    scaleup = np.where(has_fabric, up_bw * rate * reach, 0.0)
    total = host + power + cooling + nic + integration + network + scaleup
    parts = {"host": host, "power_delivery": power, "cooling": cooling, "nic": nic, "integration": integration,
             "scaleout_network": network, "scaleup_fabric": scaleup, "total": total, "liquid": liquid}
    return {k: (v.item() if np.ndim(v) == 0 else v) for k, v in parts.items()}


def system_cost(needs: SystemNeeds, econ: Economics) -> SystemCost:
    """One chip's system cost under `econ`: its flat override when set, else the system model."""
    if econ.server_and_network_usd_per_chip is not None:
        return SystemCost(basis="flat", total_usd=econ.server_and_network_usd_per_chip)
    if econ.system is None:  # Economics' validator makes this unreachable; kept for a clear message
        raise SpecError("economics has neither server_and_network_usd_per_chip nor a system: cost model")
    p = system_parts_usd(econ.system, needs.tdp_w, needs.scaleout_gb_s, needs.scaleup_gb_s,
                         needs.scaleup_domain, needs.scaleup_fabric)
    if needs.price_includes_system:  # the rack share bought with the chip holds everything but the cluster network
        inside = ("host", "power_delivery", "cooling", "nic", "integration", "scaleup_fabric")
        p = {**p, **{k: 0.0 for k in inside}, "total": p["scaleout_network"]}
    return SystemCost(
        basis="model", host_usd=p["host"], power_delivery_usd=p["power_delivery"], cooling_usd=p["cooling"],
        nic_usd=p["nic"], integration_usd=p["integration"], scaleout_network_usd=p["scaleout_network"],
        scaleup_fabric_usd=p["scaleup_fabric"], total_usd=p["total"], cooling="liquid" if p["liquid"] else "air",
        scaleup_fabric=_fabric_priced(needs),
    )


def _fabric_priced(needs: SystemNeeds) -> str:
    """The fabric kind the model priced: none for a lone chip, direct for a switchless pair."""
    if needs.scaleup_fabric == "none" or needs.scaleup_domain <= 1:
        return "none"
    if needs.scaleup_fabric == "switched" and needs.scaleup_domain <= 2:
        return "direct"
    return needs.scaleup_fabric


def chip_system_cost(chip: Any, econ: Economics) -> SystemCost:
    """System cost of a ChipSpec under `econ`."""
    return system_cost(SystemNeeds.of_chip(chip), econ)


_USD_COEFFICIENTS = ("host_usd_per_server", "power_delivery_usd_per_w", "air_cooling_usd_per_w",
                     "liquid_cooling_usd_per_w", "nic_usd_per_gb_s", "scaleout_switch_port_usd_per_gb_s",
                     "scaleout_optics_usd_per_gb_s", "scaleup_switched_usd_per_gb_s", "scaleup_direct_usd_per_gb_s")


def scale_system(econ: Economics, factor: float) -> Economics:
    """`econ` with every chip's system cost multiplied by `factor` (for sensitivity studies).

    Scales the flat override when set, else every money coefficient of the system model (the
    markup, factors and thresholds are ratios and stay), so each part scales exactly.
    """
    if not factor >= 0:
        raise SpecError(f"system cost scale must be ≥ 0, got {factor}")
    if factor == 1.0:
        return econ
    if econ.server_and_network_usd_per_chip is not None:
        return econ.with_overrides({"server_and_network_usd_per_chip": econ.server_and_network_usd_per_chip * factor},
                                   origin=f"× {factor:g} (sensitivity)")
    spec = econ.system.with_overrides({k: getattr(econ.system, k) * factor for k in _USD_COEFFICIENTS},
                                      origin=f"× {factor:g} (sensitivity)")
    return econ.model_copy(update={"system": spec})
