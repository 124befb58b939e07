"""Self-contained HTML for `tokenfab fleet` (purchases and fleet as stacked bars over time, cost per
Mtok and tokens per MW over time, binding constraints) and for the build-vs-buy NPV (break-even
distribution, tornado). Takes the plain dicts the commands print as JSON; plotly is imported here only.
"""

from __future__ import annotations

import html as _html
import math


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise ValueError("--html needs plotly: pip install plotly") from None
    return go, make_subplots


def _money(plan: dict) -> tuple[float, str]:
    return (plan["cny_per_usd"], "CNY") if plan["currency"] == "CNY" else (1.0, "USD")


def fleet_figures(plan: dict) -> list:
    """[purchases, installed fleet, cost and efficiency over time, power] as plotly figures."""
    go, make_subplots = _plotly()
    fx, cur = _money(plan)
    labels = [q["period"] for q in plan["periods"]]
    chips = sorted({c for q in plan["periods"] for c in q["fleet"]} | {c for q in plan["periods"] for c in q["purchases"]})
    figs = []
    for key, title in (("purchases", "Purchases per period (units)"), ("fleet", "Installed fleet (units)")):
        f = go.Figure()
        for c in chips:
            f.add_trace(go.Bar(x=labels, y=[q[key].get(c, 0.0) for q in plan["periods"]], name=c))
        f.update_layout(barmode="stack", title=title, yaxis_title="units")
        figs.append(f)
    eff = make_subplots(rows=1, cols=2, subplot_titles=(f"cost per million tokens served, {cur}",
                                                        "peak tokens/s per MW of facility power"))
    eff.add_trace(go.Scatter(x=labels, y=[(v * fx if v is not None else None) for v in plan["usd_per_mtok"]],
                             mode="lines+markers", name=f"{cur}/Mtok"), row=1, col=1)
    eff.add_trace(go.Scatter(x=labels, y=plan["tok_s_per_mw"], mode="lines+markers", name="tok/s per MW"), row=1, col=2)
    eff.update_layout(title="Unit economics over time (capital levelized over the depreciation life, plus opex)")
    figs.append(eff)
    pw = make_subplots(rows=1, cols=2, subplot_titles=("facility power, MW", "demand and served, tok/s at peak"))
    pw.add_trace(go.Bar(x=labels, y=[q["power_mw"] for q in plan["periods"]], name="MW"), row=1, col=1)
    pw.add_trace(go.Scatter(x=labels, y=[q["demand_tok_s"] for q in plan["periods"]], name="demand"), row=1, col=2)
    pw.add_trace(go.Scatter(x=labels, y=[q["served_tok_s"] for q in plan["periods"]], name="served"), row=1, col=2)
    pw.update_layout(title="Power and tokens")
    figs.append(pw)
    return figs


def npv_figures(npv: dict, currency: str = "USD", fx: float = 1.0) -> list:
    """[break-even distribution, NPV tornado] for a build-vs-buy Monte Carlo (`cost.npv.NpvResult` as a dict)."""
    go, _ = _plotly()
    be = [v for v in npv["break_even_samples"] if v is not None and math.isfinite(v)]
    never = len(npv["break_even_samples"]) - len(be)
    hist = go.Figure(go.Histogram(x=be, nbinsx=60, name="break-even"))
    for q in ("p10", "p50", "p90"):
        v = npv[f"break_even_units_{q}"]
        if v is not None and math.isfinite(v):
            hist.add_vline(x=v, line_dash="dash", annotation_text=q)
    asked = npv["units_per_year"] * npv["horizon_years"]
    hist.add_vline(x=asked, line_dash="dot", annotation_text="fleet asked")
    hist.update_layout(title=f"Break-even purchases over {npv['horizon_years']:g} years ({never} of "
                             f"{len(npv['break_even_samples'])} draws never break even)",
                       xaxis_title="vendor-chip equivalents", yaxis_title="draws")
    rows = list(reversed(npv["tornado"]))
    base = npv["base_npv_usd"] * fx
    tor = go.Figure()
    for label, key, val in (("low end", "npv_at_low_usd", "low"), ("high end", "npv_at_high_usd", "high")):
        tor.add_trace(go.Bar(y=[r["input"] for r in rows], x=[r[key] * fx - base for r in rows], base=base,
                             orientation="h", name=label, customdata=[r[val] for r in rows],
                             hovertemplate="%{y} = %{customdata:.4g}<extra>" + label + "</extra>"))
    tor.update_layout(barmode="overlay", title=f"NPV of building at the fleet asked, one input at a time ({currency})",
                      xaxis_title=f"NPV, {currency}")
    return [hist, tor]


def _page(title: str, summary: list[str], figs: list, table: str = "") -> str:
    body = "\n".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    paras = "".join(f"<p>{_html.escape(s)}</p>" for s in summary)
    t = _html.escape(title)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{t}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>"
            f"</head><body><h1>{t}</h1>{paras}{table}{body}</body></html>")


def fleet_html(plan: dict, npv: dict | None = None) -> str:
    """The fleet plan page (and, when given, a build-vs-buy NPV section)."""
    fx, cur = _money(plan)
    first, last = plan["periods"][0], plan["periods"][-1]
    summary = [
        f"Objective {plan['objective'].replace('_', ' ')}; present value of the plan {plan['npv_usd'] * fx:,.0f} {cur}.",
        f"{first['period']}: {first['power_mw']:,.0f} MW, {first['served_tok_s']:,.0f} tok/s served of "
        f"{first['demand_tok_s']:,.0f}; {last['period']}: {last['power_mw']:,.0f} MW, {last['served_tok_s']:,.0f} "
        f"of {last['demand_tok_s']:,.0f}.",
    ]
    rows = "".join(f"<tr><td style='text-align:left'>{_html.escape(b['constraint'])}</td><td>{_html.escape(b['period'])}"
                   f"</td><td>{_html.escape(b['name'])}</td><td>{b['shadow_price']:,.4g}</td>"
                   f"<td style='text-align:left'>{_html.escape(b['unit'])}</td></tr>" for b in plan["binding"][:15])
    table = ("<h2>Binding constraints (shadow prices from the LP relaxation)</h2><table><tr><th>constraint</th>"
             f"<th>period</th><th>on</th><th>one more is worth</th><th>unit</th></tr>{rows}</table>")
    figs = fleet_figures(plan)
    if npv is not None:
        figs += npv_figures(npv, cur, fx)
    return _page(f"tokenfab fleet: {plan.get('scenario') or 'plan'}", summary, figs, table)


def npv_section_html(npv: dict, currency: str = "USD", fx: float = 1.0, include_js: bool = False) -> str:
    """The NPV figures as an HTML fragment to append to a page (that already embeds plotly.js unless
    `include_js`)."""
    figs = npv_figures(npv, currency, fx)
    head = (f"<h2>NPV under uncertainty ({npv['draws']:,} draws, seed {npv['seed']})</h2><p>"
            + _html.escape(f"Building wins in {npv['p_build_wins']:.0%} of draws; break-even p10/p50/p90 "
                           f"{npv['break_even_units_p10']:,.0f} / {npv['break_even_units_p50']:,.0f} / "
                           f"{npv['break_even_units_p90']:,.0f} vendor-chip equivalents.") + "</p>")
    return head + "\n".join(f.to_html(full_html=False, include_plotlyjs=include_js and i == 0)
                             for i, f in enumerate(figs))
