"""KVTier: where prefix-cache hits live when they are not in HBM (host DRAM, SSD/pooled storage)."""

from __future__ import annotations

from pydantic import Field

from tokenfab.specs.base import Spec


class KVTier(Spec):
    """One level of the KV-cache storage hierarchy below HBM, as a prefill chip sees it."""

    name: str = Field(min_length=1, max_length=64)
    read_gb_s_per_chip: float = Field(gt=0, le=10_000)
    """Read bandwidth from the tier into one chip's HBM, GB/s (a node's tier bandwidth / chips per node)."""
    capacity_tb_per_node: float = Field(gt=0, le=100_000)
    """Capacity of the tier per 8-chip node, TB."""
    usd_per_tb_month: float = Field(ge=0, le=1e6)
    """Cost of holding one TB in the tier for a month (hardware amortized + power), USD."""
    retention_h: float = Field(gt=0, le=24 * 365)
    """How long a cached prefix is kept, hours: each cached token is paid for that long."""
    source: str = ""
    estimated: bool = True
    """True when the figures are estimates (shown as such)."""

    def storage_usd_per_token(self, kv_bytes_per_token: float) -> float:
        """Holding one token's KV (all layers, `kv_bytes_per_token` bytes) for the retention time."""
        return kv_bytes_per_token / 1e12 * self.usd_per_tb_month / (30.0 * 24.0) * self.retention_h


KV_TIERS: dict[str, KVTier] = {
    # DeepSeek's 3FS README: "KVCache ... peak read throughput reached up to 40 GiB/s" per client
    # node of 8 GPUs (deepseek-ai/3FS README, "3. KVCache"): 42.9 GB/s / 8 = 5.4 GB/s per chip.
    # Its storage cluster: 180 nodes, 16 × 14 TiB NVMe each. Cost per TB-month: an NVMe server at
    # about $400/TB raw over 48 months with power is ~$10/TB-month (estimate).
    "ssd": KVTier(name="ssd", read_gb_s_per_chip=5.4, capacity_tb_per_node=240.0, usd_per_tb_month=10.0,
                  retention_h=24.0, estimated=True,
                  source="read bandwidth: deepseek-ai/3FS README (KVCache read 40 GiB/s per client node); "
                         "capacity and cost: estimates (DeepSeek keeps the on-disk cache hours to days)"),
    # Host DRAM over PCIe Gen5 x16: 64 GB/s per direction nominal, ~50 GB/s sustained (estimate);
    # 2 TB per node; DDR5 at about $5/GB over 48 months ≈ $100/TB-month (estimate).
    "dram": KVTier(name="dram", read_gb_s_per_chip=50.0, capacity_tb_per_node=2.0, usd_per_tb_month=100.0,
                   retention_h=1.0, estimated=True,
                   source="PCIe Gen5 x16 host link (64 GB/s nominal); capacity and cost: estimates"),
}
"""Shipped tiers; `ssd` is the default (DeepSeek's on-disk context cache)."""
