"""Self-contained plotly HTML for `tokenfab compare`: throughput vs latency, memory, cost."""

from __future__ import annotations

import html as _html
from pathlib import Path


def write_compare_html(rows: list[dict], failures: list[dict], traffic, path: Path) -> None:
    """Write the report (plotly.js embedded, so it opens offline)."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise ValueError("--html needs plotly: pip install plotly") from None
    figs = []
    positions = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left")
    # Throughput per chip vs TPOT, one marker per (model, chip); estimated specs hollow.
    fig = go.Figure()
    for model in sorted({r["model"] for r in rows}):
        rs = [r for r in rows if r["model"] == model]
        fig.add_trace(go.Scatter(
            x=[r["tpot_ms"] for r in rs], y=[r["output_tok_s_per_chip"] for r in rs], mode="markers+text",
            text=[r["chip"] + ("*" if r["spec_confidence"] != "datasheet" else "") for r in rs],
            textposition=[positions[i % len(positions)] for i in range(len(rs))], name=model,
            marker=dict(size=12, symbol=["circle" if r["spec_confidence"] == "datasheet" else "circle-open" for r in rs]),
            hovertemplate="%{text}<br>TPOT %{x:.1f} ms<br>%{y:,.0f} output tok/s/chip<extra>" + model + "</extra>"))
    if traffic.slo_tpot_ms:
        fig.add_vline(x=traffic.slo_tpot_ms, line_dash="dash", annotation_text="TPOT SLO")
    fig.update_layout(title="Output throughput per chip vs time per output token (best mapping each)",
                      xaxis_title="TPOT, ms", yaxis_title="output tokens/s per chip", yaxis_type="log")
    figs.append(fig)
    # Memory breakdown per chip.
    labels = [f"{r['model']} · {r['chip']}" for r in rows]
    mem = make_subplots()
    for part in ("weights", "kv_cache", "activations", "reserve", "free"):
        mem.add_trace(go.Bar(name=part, x=labels, y=[r["memory_gb_per_chip"][part] for r in rows]))
    mem.update_layout(barmode="stack", title="Memory per chip, GB", yaxis_title="GB")
    figs.append(mem)
    if any(r.get("usd_per_mtok_output") is not None for r in rows):
        cost = go.Figure()
        cost.add_trace(go.Bar(name="$/M input tokens", x=labels, y=[r.get("usd_per_mtok_input") for r in rows]))
        cost.add_trace(go.Bar(name="$/M output tokens", x=labels, y=[r.get("usd_per_mtok_output") for r in rows]))
        cost.update_layout(barmode="group", title="Cost per million tokens, USD", yaxis_title="USD")
        figs.append(cost)
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    table = "".join(
        f"<tr><td>{_html.escape(r['model'])}</td><td>{_html.escape(r['chip'])}{'*' if r['spec_confidence'] != 'datasheet' else ''}</td>"
        f"<td>{_html.escape(deployment_label(r))}</td>"
        f"<td>{r['num_chips']}</td><td>{r['tp']}/{r['pp']}/{r['ep']}/{r['dp']}</td><td>{r['batch']}</td>"
        f"<td>{r['weight_precision']}/{r['kv_precision']}</td><td>{r['ttft_ms']:,.0f}</td><td>{r['tpot_ms']:,.1f}</td>"
        f"<td>{r['output_tok_s_per_chip']:,.0f}</td><td>{'yes' if r['meets_slo'] else 'no'}</td>"
        f"<td>{_money(r.get('usd_per_mtok_input'))}</td><td>{_money(r.get('usd_per_mtok_output'))}</td>"
        f"<td>{_html.escape(r.get('binding') or '—')}</td></tr>"
        for r in rows)
    fails = "".join(f"<li>{_html.escape(f['model'])} on {_html.escape(f['chip'])}: {_html.escape(f['error'])}</li>"
                    for f in failures)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>tokenfab compare</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style>
</head><body><h1>tokenfab compare</h1>
{''.join(f"<p><b>{_html.escape(a)}</b></p>" for a in answers(rows))}
<p>Traffic: ISL {traffic.input_len}, OSL {traffic.output_len}; SLOs: TTFT {traffic.slo_ttft_ms or '—'} ms,
TPOT {traffic.slo_tpot_ms or '—'} ms. Predictions are first-principles estimates; * marks chips whose specs are partly estimated.</p>
<table><tr><th>model</th><th>chip</th><th>mode / pools</th><th>chips</th><th>TP/PP/EP/DP</th><th>batch</th><th>precision</th>
<th>TTFT ms</th><th>TPOT ms</th><th>out tok/s/chip</th><th>meets SLO</th><th>$/M input</th><th>$/M output</th>
<th>binding</th></tr>{table}</table>
{'<h3>Does not fit</h3><ul>' + fails + '</ul>' if fails else ''}
{''.join(parts)}</body></html>"""
    Path(path).write_text(doc)


def _money(x) -> str:
    return "—" if x is None else f"${x:,.3f}"


def answers(rows: list[dict]) -> list[str]:
    """One sentence per model: the chip with the cheapest output token among those meeting the SLOs,
    against the next one (estimates)."""
    out = []
    for model in sorted({r["model"] for r in rows}):
        ok = sorted((r for r in rows if r["model"] == model and r.get("meets_slo")
                     and r.get("usd_per_mtok_output") is not None), key=lambda r: r["usd_per_mtok_output"])
        if not ok:
            out.append(f"{model}: no chip compared both meets the SLOs and has a price.")
            continue
        best = ok[0]
        vs = (f", {ok[1]['usd_per_mtok_output'] / best['usd_per_mtok_output']:.2f}× cheaper than {ok[1]['chip']}"
              if len(ok) > 1 else "")
        out.append(f"{model}: the cheapest output token meeting the SLOs is on {best['chip']}, "
                   f"{_money(best['usd_per_mtok_output'])} per million ({best['output_tok_s_per_chip']:,.0f} tok/s/chip, "
                   f"{deployment_label(best)}){vs} — estimates.")
    return out


def deployment_label(r: dict) -> str:
    """'aggregated', or the pools of a disaggregated deployment: 'P 2×16 h800 EP16 · D 1×32 h800 EP32'
    (attention-FFN: P, A and F pools)."""
    if r.get("mode", "aggregated") == "aggregated":
        return "aggregated"
    return " · ".join(f"{p['role'][0].upper()} {p['instances']}×{p['num_chips']} {p['chip']} TP{p['tp']} EP{p['ep']}"
                      + (f" CP{p['cp']}" if p.get("cp", 1) > 1 else "") for p in r.get("pools", []))
