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
    return _table(("model", "chip", "chips used", "TP/PP/CP/EP/DP", "schedule", "step s", "MFU", "days", "chip-hours",
                   "$ per run", "$ per T tokens", "GiB per chip"),
                  ([_html.escape(r["model"]), _html.escape(r["chip"]), f"{r['chips_used']:,}", _mapping(r["mapping"]),
                    _html.escape(r["mapping"]["schedule"]), f"{r['step_time_s']:,.2f}", f"{r['mfu']:.1%}",
                    f"{r['days']:,.1f}", f"{r['chip_hours']:,.0f}", _money(r.get("usd")),
                    _money(r.get("usd_per_trillion_tokens")), f"{r['memory_gib_per_chip']:.1f}"] for r in rows))


def _table(headers, rows) -> str:
    """An HTML table: one header row, then one row per list of already formatted (escaped) cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


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


STEP_PARTS = ("compute", "recompute", "comm", "bubble", "p2p", "dp_sync", "optimizer")
"""The step's parts as `tokenfab train --json` reports them (`step_parts_s`)."""


def train_run_figures(row: dict, sweep: list[dict]) -> list:
    """The step split of the chosen mapping (one stacked bar; the parts overlap where communication
    hides behind compute, so they may add up to more than the step), and MFU and days of the best
    mapping at each chip count of `sweep`."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    parts = row["step_parts_s"]
    split = go.Figure()
    for k in STEP_PARTS:
        if k in parts:
            split.add_trace(go.Bar(name=k.replace("_", " "), y=["step"], x=[parts[k]], orientation="h",
                                   hovertemplate=f"{k}: %{{x:.3f}} s<extra></extra>"))
    split.add_vline(x=row["step_time_s"], line_dash="dash",
                    annotation_text=f"step {row['step_time_s']:.2f} s (overlapped parts count once)")
    split.update_layout(barmode="stack", title="Where a training step goes, seconds on the slowest stage (estimate)",
                        xaxis_title="seconds per step", height=320)
    figs = [split]
    if sweep:
        xs = [s["chips"] for s in sweep]
        scale = make_subplots(specs=[[{"secondary_y": True}]])
        scale.add_trace(go.Scatter(x=xs, y=[100.0 * s["mfu"] for s in sweep], name="MFU, %", mode="lines+markers",
                                   customdata=[_mapping(s["mapping"]) + " " + s["mapping"]["schedule"] for s in sweep],
                                   hovertemplate="%{x:,} chips: MFU %{y:.1f}%<br>TP/PP/CP/EP/DP %{customdata}"
                                                 "<extra></extra>"), secondary_y=False)
        scale.add_trace(go.Scatter(x=xs, y=[s["days"] for s in sweep], name="days", mode="lines+markers",
                                   hovertemplate="%{x:,} chips: %{y:,.1f} days<extra></extra>"), secondary_y=True)
        scale.update_xaxes(type="log", title_text="chips available (best mapping at each count)")
        scale.update_yaxes(title_text="MFU, %", secondary_y=False)
        scale.update_yaxes(title_text="days of the run", type="log", secondary_y=True)
        scale.update_layout(title="MFU and days against chip count (estimate)")
        figs.append(scale)
    return figs


def top_mappings_table_html(top: list[dict]) -> str:
    """The fastest fitting mappings as an HTML table, best first."""
    return _table(("#", "TP/PP/CP/EP/DP", "schedule", "micro-batch", "ZeRO", "recompute", "overlap", "chips used",
                   "step s", "MFU", "days", "GiB per chip"),
                  ([str(i), _mapping(t), _html.escape(t["schedule"]), str(t["micro_batch"]), str(t["zero"]),
                    _html.escape(t["recompute"]), "on" if t["overlap"] else "off", f"{t['chips_used']:,}",
                    f"{t['step_time_s']:,.2f}", f"{t['mfu']:.1%}", f"{t['days']:,.1f}",
                    f"{t['memory_gib_per_chip']:.1f}"] for i, t in enumerate(top, 1)))


def train_run_html(row: dict, sweep: list[dict], top: list[dict]) -> str:
    """The page of one `tokenfab train` run (plotly.js embedded, so it opens offline)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ValueError("--html needs plotly: pip install plotly") from None
    figs = train_run_figures(row, sweep)
    parts = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    mp = row["mapping"]
    title = f"tokenfab train {row['model']} on {row['chips_used']:,} × {row['chip']}"
    usd = row.get("usd")
    summary = (f"{row['tokens'] / 1e12:g} trillion tokens at sequence length {row['seq_len']:,}, {row['precision']} "
               f"GEMMs: TP {mp['tp']} · PP {mp['pp']} ({mp['schedule']}) · CP {mp['cp']} · EP {mp['ep']} · DP "
               f"{mp['dp']}, ZeRO {mp['zero']}, recompute {mp['recompute']} (schedules of software "
               f"{row.get('software', 'any')}); step {row['step_time_s']:.2f} s, MFU "
               f"{row['mfu']:.1%}, goodput {row['goodput']:.1%}, {row['days']:,.1f} days, {row['chip_hours']:,.0f} "
               f"chip-hours" + (f", ${usd:,.0f}" if usd is not None else "") +
               f"; {row['memory_gib_per_chip']:.1f} GiB per chip. First-principles estimates, not measurements.")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{_html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body><h1>{_html.escape(title)}</h1><p>{_html.escape(summary)}</p>
<h2>Fastest mappings that fit</h2>{top_mappings_table_html(top)}
{parts}</body></html>"""
