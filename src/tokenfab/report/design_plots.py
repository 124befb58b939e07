"""Plotly bars of a design's area and power breakdown, as a self-contained HTML page; with a workload,
the change in $/Mtok from 10% more of each resource and $/Mtok against shared SRAM."""

from __future__ import annotations

import html as _html


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise ValueError("--html needs plotly: pip install plotly") from None
    return go, make_subplots


def chip_figure(summary: dict):
    """Two bar charts: die area by part (mm²) and power by part at the bf16 GEMM load (W)."""
    go, make_subplots = _plotly()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"die area, mm² (total {summary['die_area_mm2']:.0f})",
        f"power at the bf16 GEMM load, W (est. {summary.get('power_w', 0):.0f}, TDP {summary['tdp_w']:.0f})"))
    area = {k: v for k, v in (summary.get("area_mm2_breakdown") or {}).items() if v > 0}
    power = {k: v for k, v in (summary.get("power_w_breakdown") or {}).items() if v > 0}
    fig.add_trace(go.Bar(x=list(area), y=list(area.values()), showlegend=False,
                         hovertemplate="%{x}: %{y:.1f} mm²<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=list(power), y=list(power.values()), showlegend=False,
                         hovertemplate="%{x}: %{y:.1f} W<extra></extra>"), row=1, col=2)
    if summary.get("reticle_limit_mm2"):
        fig.add_annotation(text=f"one die {summary['die_area_mm2_each']:.0f} mm² of "
                                f"{summary['reticle_limit_mm2']:.0f} mm² reticle",
                           xref="x domain", yref="y domain", x=1, y=1.05, showarrow=False, row=1, col=1)
    fig.update_layout(title=f"{summary['id']}: where the silicon and the watts go", height=520)
    return fig


def sram_figure(workload: dict):
    """Output $/Mtok (and tok/s/chip, right axis) against the design's shared SRAM per die, from
    `explain.sram_sweep` rows; infeasible or unpriced variants are left out of the lines."""
    go, make_subplots = _plotly()
    rows = [r for r in workload["sram_sweep"] if r.get("usd_per_mtok_output") is not None]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [r["shared_sram_mb_per_die"] for r in rows]
    fig.add_trace(go.Scatter(x=x, y=[r["usd_per_mtok_output"] for r in rows], mode="lines+markers",
                             name="$/Mtok output", customdata=[[r["scale"], r["die_area_mm2"], r["unit_cost_usd"] or 0]
                                                               for r in rows],
                             hovertemplate="%{x:g} MB/die (%{customdata[0]:g}x): $%{y:.3f}/Mtok, "
                                           "%{customdata[1]:.0f} mm², unit $%{customdata[2]:,.0f}<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r["output_tok_s_per_chip"] for r in rows], mode="lines+markers",
                             name="output tok/s/chip", line={"dash": "dot"},
                             hovertemplate="%{x:g} MB/die: %{y:,.0f} tok/s/chip<extra></extra>"), secondary_y=True)
    fig.update_xaxes(type="log", title_text="shared SRAM per die, MB (log)")
    fig.update_yaxes(title_text="$/Mtok output", secondary_y=False)
    fig.update_yaxes(title_text="output tok/s/chip", secondary_y=True)
    fig.update_layout(title=f"{workload['model']}, ISL {workload['input_len']}, OSL {workload['output_len']}: "
                            "cost per token against shared SRAM (re-derived design, tiled model)", height=460)
    return fig


def resource_figure(workload: dict):
    """Horizontal bars: the change in output $/Mtok from 10% more of each resource."""
    go, _ = _plotly()
    rows = [r for r in workload["resources"]["rows"] if r["usd_per_mtok_output_change"] is not None]
    fig = go.Figure(go.Bar(y=[r["resource"] for r in rows], x=[100 * r["usd_per_mtok_output_change"] for r in rows],
                           orientation="h", hovertemplate="%{y}: %{x:+.2f}% $/Mtok<extra></extra>"))
    fig.update_layout(title="change in output $/Mtok from 10% more of one resource (chip price kept)",
                      xaxis_title="%", yaxis={"autorange": "reversed"}, height=360)
    return fig


def chip_html(summary: dict) -> str:
    """A page with the bars (plotly.js embedded, opens offline) and the feasibility verdict."""
    fig = chip_figure(summary)
    title = _html.escape(f"tokenfab chip: {summary['id']}")
    reasons = "; ".join(summary.get("infeasible_reasons", []))
    verdict = "feasible" if summary.get("feasible") else f"infeasible: {reasons}"
    cost = summary.get("unit_cost_usd")
    line = _html.escape(f"{summary.get('bf16_tflops', 0):.0f} bf16 TFLOPS, {summary['die_area_mm2']:.0f} mm², "
                        f"unit cost {'$' + format(cost, ',.0f') if cost else 'n/a'}; {verdict}")
    extra = ""
    w = summary.get("workload") or {}
    if w.get("resources"):
        base = w["resources"]["base"]
        extra += (f"<p>{_html.escape(str(base['binding']))}: {_html.escape(base['binding_detail'] or '')}</p>"
                  + resource_figure(w).to_html(full_html=False, include_plotlyjs=False))
    if w.get("sram_sweep"):
        extra += sram_figure(w).to_html(full_html=False, include_plotlyjs=False)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{line}</p>{fig.to_html(full_html=False, include_plotlyjs=True)}"
            f"{extra}</body></html>")
