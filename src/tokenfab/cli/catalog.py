"""`tokenfab catalog chips|models`: what ships, with sources."""

from __future__ import annotations

from enum import Enum

import typer
from rich.table import Table

from tokenfab import catalog
from tokenfab.cli import options as o
from tokenfab.cli.common import console, handle_errors, print_json


class Kind(str, Enum):
    chips = "chips"
    models = "models"


def register(app: typer.Typer) -> None:
    app.command("catalog")(show_catalog)


@handle_errors
def show_catalog(kind: Kind = typer.Argument(..., help="chips or models"), json_out: bool = o.Json) -> None:
    """List the shipped chips or models with their key figures and sources."""
    if kind is Kind.chips:
        chips = [catalog.load_chip(i) for i in catalog.chip_ids()]
        if json_out:
            from tokenfab.cost.export_control import export_control

            print_json([dict(c.model_dump(mode="json"), spec_confidence=c.spec_confidence,
                             export_control=export_control(c)) for c in chips])
            return
        t = Table(title="Chips (dense peaks; * = partly estimated)", title_justify="left")
        for col in ("id", "vendor", "bf16 TF", "fp8 TF", "fp4 TF", "HBM GB", "HBM TB/s", "scale-up GB/s×dom", "TDP W",
                    "price $", "US 3A090 (TPP)", "source"):
            t.add_column(col)
        for c in chips:
            t.add_row(c.id + (" *" if c.spec_confidence != "datasheet" else ""), c.vendor, f"{c.bf16_tflops:g}",
                      _g(c.fp8_tflops), _g(c.fp4_tflops), f"{c.hbm_gb:g}", f"{c.hbm_tb_s:g}",
                      f"{c.scaleup_gb_s:g}×{c.scaleup_domain}", f"{c.tdp_w:g}", _g(c.price_usd), _eccn(c),
                      c.source_of("default")[:60])
        console.print(t)
        return
    models = [catalog.load_model(i) for i in catalog.model_ids()]
    rows = [dict(m.model_dump(mode="json"), total_params_b=m.total_params() / 1e9,
                 active_params_b=m.active_params() / 1e9) for m in models]
    if json_out:
        print_json(rows)
        return
    t = Table(title="Models (Hugging Face config.json shipped in the package)", title_justify="left")
    for col in ("id", "family", "params B", "active B", "layers", "d_model", "attention", "experts", "source"):
        t.add_column(col)
    for m, r in zip(models, rows):
        experts = f"{m.num_experts} top-{m.experts_per_token}" if m.is_moe else "—"
        attn = "MLA" if m.attention == "mla" else f"GQA {m.num_heads}/{m.num_kv_heads}"
        attn = {"diffusion": f"DiT {m.num_heads} heads", "recsys": m.recsys.variant if m.recsys else "recsys"}.get(m.kind, attn)
        if m.sparse_attention:
            attn += " + DSA"
        if m.linear_attention:
            attn += f" + {m.num_linear_layers} linear"
        if m.vision:
            attn += " + ViT"
        t.add_row(m.id, m.family, f"{r['total_params_b']:.1f}", f"{r['active_params_b']:.1f}", str(m.num_layers),
                  str(m.hidden_size), attn, experts, m.source[:50])
    console.print(t)


def _eccn(c) -> str:
    """Short export-control screen: `3A090.a (15,832)`; `—` below the thresholds (`cost/export_control.py`)."""
    from tokenfab.cost.export_control import screen

    e = screen(c)
    label = {"not 3A090.a/.b": "—", "unknown": "?"}.get(e.classification, e.classification)
    return f"{label} ({e.tpp:,.0f})" if e.tpp is not None else label


def _g(v) -> str:
    return "—" if v is None else f"{v:g}"
