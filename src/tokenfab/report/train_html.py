"""Self-contained plotly HTML for `tokenfab compare --train`: $ per trillion tokens and days per run."""

from __future__ import annotations

import html as _html
from pathlib import Path


def train_figures(rows: list[dict]) -> list:
    """Two grouped bar charts, one bar per (model, chip): $ per trillion tokens, and days of the run."""
    import plotly.graph_objects as go

    figs = []
    models = sorted({r["model"] for r in rows})
    priced = [r for r in rows if r.get("usd_per_trillion_tokens") is not None]
    if priced:
        cost = go.Figure()
        for m in models:
            rs = [r for r in priced if r["model"] == m]
            cost.add_trace(go.Bar(name=m, x=[r["chip"] for r in rs], y=[r["usd_per_trillion_tokens"] for r in rs],
                                  hovertemplate="%{x}<br>$%{y:,.0f} per trillion tokens<extra>" + m + "</extra>"))
        cost.update_layout(barmode="group", title="Cost per trillion training tokens, USD (estimate)",
                           yaxis_title="USD per trillion tokens")
        figs.append(cost)
    days = go.Figure()
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        days.add_trace(go.Bar(name=m, x=[r["chip"] for r in rs], y=[r["days"] for r in rs],
                              hovertemplate="%{x}<br>%{y:,.1f} days<extra>" + m + "</extra>"))
    days.update_layout(barmode="group", title="Days of the run (estimate)", yaxis_title="days")
    figs.append(days)
    return figs


def train_table_html(rows: list[dict]) -> str:
    """The comparison as an HTML table (no styling of its own)."""
    body = "".join(
        f"<tr><td>{_html.escape(r['model'])}</td><td>{_html.escape(r['chip'])}</td><td>{r['chips_used']:,}</td>"
        f"<td>{_mapping(r['mapping'])}</td><td>{_html.escape(r['mapping']['schedule'])}</td>"
        f"<td>{r['step_time_s']:,.2f}</td><td>{r['mfu']:.1%}</td><td>{r['days']:,.1f}</td>"
        f"<td>{r['chip_hours']:,.0f}</td><td>{_money(r.get('usd'))}</td>"
        f"<td>{_money(r.get('usd_per_trillion_tokens'))}</td><td>{r['memory_gib_per_chip']:.1f}</td></tr>"
        for r in rows)
    return ("<table><tr><th>model</th><th>chip</th><th>chips used</th><th>TP/PP/CP/EP/DP</th><th>schedule</th>"
            "<th>step s</th><th>MFU</th><th>days</th><th>chip-hours</th><th>$ per run</th>"
            f"<th>$ per T tokens</th><th>GiB per chip</th></tr>{body}</table>")


def write_train_compare_html(rows: list[dict], failures: list[dict], job, chips_per_run: int, path: Path) -> None:
    """Write the report (plotly.js embedded, so it opens offline)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ValueError("--html needs plotly: pip install plotly") from None
    figs = train_figures(rows)
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    fails = "".join(f"<li>{_html.escape(f['model'])} on {_html.escape(f['chip'])}: {_html.escape(f['error'])}</li>"
                    for f in failures)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>tokenfab compare --train</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style>
</head><body><h1>tokenfab compare --train</h1>
{''.join(f"<p><b>{_html.escape(a)}</b></p>" for a in answers(rows))}
<p>Run: {job.tokens / 1e12:g} trillion tokens at sequence length {job.seq_len:,}, {job.precision} GEMMs, global batch
{job.global_batch_tokens / 2**20:g}M tokens, up to {chips_per_run:,} chips (the search may leave some idle).
Figures are first-principles estimates (`tokenfab train`); $ at each chip's cost per chip-hour.</p>
{train_table_html(rows)}
{'<h3>Does not fit</h3><ul>' + fails + '</ul>' if fails else ''}
{''.join(parts)}</body></html>"""
    Path(path).write_text(doc)


def answers(rows: list[dict]) -> list[str]:
    """One sentence per model: the chip with the cheapest trillion training tokens, and the fastest run."""
    out = []
    for m in sorted({r["model"] for r in rows}):
        rs = [r for r in rows if r["model"] == m]
        priced = sorted((r for r in rs if r.get("usd_per_trillion_tokens") is not None),
                        key=lambda r: r["usd_per_trillion_tokens"])
        fastest = min(rs, key=lambda r: r["days"])
        s = f"{m}: "
        if priced:
            s += (f"cheapest trillion tokens on {priced[0]['chip']} (${priced[0]['usd_per_trillion_tokens']:,.0f}"
                  + (f", vs ${priced[1]['usd_per_trillion_tokens']:,.0f} on {priced[1]['chip']}" if len(priced) > 1
                     else "") + "); ")
        s += f"fastest run on {fastest['chip']} ({fastest['days']:,.1f} days)."
        out.append(s)
    return out


def _mapping(mp: dict) -> str:
    return f"{mp['tp']}/{mp['pp']}/{mp['cp']}/{mp['ep']}/{mp['dp']}"


def _money(x) -> str:
    return "—" if x is None else f"${x:,.0f}"
