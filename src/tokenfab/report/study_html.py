"""One self-contained HTML report of a study, from its results document (`results.json`).

Order: the answer (sentences and one table), throughput vs latency per chip, $/Mtoken with its
cost breakdown, memory per chip, fleet for the volume, serving latency CDFs (when the serving
section ran), build-vs-buy break-even and tornado (when asked), the design search's Pareto front,
table and verdict (when asked), then every input and source
(chip specs and their confidence, economics, traffic, study hash and tokenfab version).

The page works offline: plotly.js is embedded once in the head and each chart only calls it.
It prints (print CSS in `study.css`; charts are resized before printing). Every figure is an
estimate and labelled so. plotly is imported here only.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from typing import Any

CHART_CLASS = "tf-chart"
"""Class of the <figure> around every chart (the browser test counts them)."""
COST_PARTS = ("capex", "power", "hosting", "ops", "rental")
MEMORY_PARTS = (("weights", "weights"), ("kv_cache", "KV cache"), ("activations", "activations"),
                ("reserve", "runtime reserve"), ("free", "free"))
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_EST_TAG = ' <span class="tag est">estimate</span>'


def _plotly():
    try:
        import plotly.graph_objects as go
        import plotly.offline
    except ImportError:
        raise ValueError("the study report needs plotly: pip install plotly") from None
    return go, plotly.offline


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _usd(x: Any) -> str:
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    return f"${x:,.2f}" if abs(x) >= 0.1 else f"${x:,.3f}"


def _val(x: Any) -> str:
    """An input value as written for people: 1e12 → 1,000,000,000,000; 0.0826 stays."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _e(x)
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return f"{int(x):,}"
    return f"{x:,.6g}" if isinstance(x, float) else f"{x:,}"


def _tr(*cells: str, num_from: int = 1, note: str | None = None) -> str:
    """A table row of HTML cells; cells from `num_from` on are right-aligned numbers; `note` ends it in grey."""
    tail = f'<td class="note">{note}</td>' if note is not None else ""
    return "<tr>" + "".join(f'<td class="num">{c}</td>' if i >= num_from else f"<td>{c}</td>"
                            for i, c in enumerate(cells)) + tail + "</tr>"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


class _Report:
    """Collects sections and charts; charts are numbered in order of appearance."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.go, self.offline = _plotly()
        self.charts = 0
        self.chips = doc["inputs"]["chips"]

    # ---- helpers ------------------------------------------------------------------------
    def chart(self, fig, caption: str, height: int = 430, top: int = 60, right: int = 20, bottom: int = 60) -> str:
        self.charts += 1
        fig.update_layout(template="plotly_white", height=height, margin=dict(l=60, r=right, t=top, b=bottom),
                          font=dict(size=12))
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{self.charts}",
                          config=_PLOT_CONFIG)
        return (f'<figure class="{CHART_CLASS}" id="fig-{self.charts}">{div}'
                f"<figcaption>Figure {self.charts}. {_e(caption)}</figcaption></figure>")

    def is_hypothetical(self, chip: str) -> bool:
        c = self.chips.get(chip, {})
        text = f"{c.get('vendor', '')} {c.get('sources', {}).get('default', '')}".lower()
        return "hypothetical" in text

    def chip_label(self, chip: str, plain: bool = False) -> str:
        """`h20*` for partly estimated specs, `tf-infer-1 (hypothetical)` for designs."""
        star = "*" if self.chips.get(chip, {}).get("spec_confidence") == "partly-estimated" else ""
        if plain:
            return chip + star + (" (hyp.)" if self.is_hypothetical(chip) else "")
        tags = ""
        if self.is_hypothetical(chip):
            tags += '<span class="tag hyp">hypothetical</span>'
        elif star:
            tags += '<span class="tag est" title="some performance fields of this chip are estimates">partly estimated</span>'
        return f'<a href="#chip-{_slug(chip)}">{_e(chip)}</a>{star}{tags}'

    def groups(self) -> list[tuple[str, str, list[dict]]]:
        """(model, traffic, rows) in study order."""
        out = []
        for model in dict.fromkeys(r["model"] for r in self.doc["rows"]):
            for case in self.doc["inputs"]["traffic"]:
                rows = [r for r in self.doc["rows"] if r["model"] == model and r["traffic"] == case["name"]]
                out.append((model, case["name"], rows))
        return out

    def case(self, name: str) -> dict:
        return next(t for t in self.doc["inputs"]["traffic"] if t["name"] == name)

    def section_of(self, model: str, chip: str, traffic: str) -> dict:
        return self.doc["sections"].get(f"estimate/{model}/{chip}/{traffic}", {})

    # ---- summary ------------------------------------------------------------------------
    def summary(self) -> str:
        s = self.doc["summary"]
        answers = s["answers"]
        first = f'<p class="answer">{_e(answers[0]["sentence"])}</p>' if answers else ""
        more = "".join(f'<p class="answer-more">{_e(a["sentence"])}</p>' for a in answers[1:])
        volume = self.doc["inputs"].get("volume")
        head = ["chip", "deployment: chips · TP/PP/EP/DP · batch · precision", "TTFT ms", "TPOT ms",
                "output tok/s per chip", "meets SLOs", "$/chip-hour", "$/M input", "$/M output", "$/M output, all chip time"]
        if volume:
            head += ["chips for volume", "$/day"]
        body = []
        for model, traffic, rows in self.groups():
            case = self.case(traffic)
            slos = ", ".join(x for x in (f"TTFT ≤ {case['slo_ttft_ms']:,g} ms" if case.get("slo_ttft_ms") else "",
                                         f"TPOT ≤ {case['slo_tpot_ms']:,g} ms" if case.get("slo_tpot_ms") else "") if x)
            body.append(f'<tr class="group"><th colspan="{len(head)}">{_e(model)} · {_e(traffic)} '
                        f'({case["input_len"]:,} → {case["output_len"]:,} tokens{", " + _e(slos) if slos else ""})</th></tr>')
            best = next((a.get("best") for a in answers if a.get("model") == model and a.get("traffic") == traffic), None)
            key = "usd_per_day" if volume else "usd_per_mtok_output_all_in"
            ordered = sorted(rows, key=lambda r: (r.get("status") != "ok", not r.get("meets_slo"),
                                                  r.get(key) is None, r.get(key) or 0))
            for r in ordered:
                cls = "best" if r["chip"] == best else ("muted" if r.get("status") != "ok" or not r.get("meets_slo") else "")
                if r.get("status") != "ok":
                    body.append(f'<tr class="{cls}"><td>{self.chip_label(r["chip"])}</td><td colspan="{len(head) - 1}">'
                                f'<span class="note">does not fit: {_e(r.get("error", ""))}</span></td></tr>')
                    continue
                dep = (f"{r['num_chips']} · {r['tp']}/{r['pp']}/{r['ep']}/{r['dp']} · {r['batch']} · "
                       f"{r['weight_precision']}/{r['kv_precision']}")
                if r.get("mode", "aggregated") != "aggregated":
                    from tokenfab.report.compare_html import deployment_label
                    dep += f" — {deployment_label(r)}"
                cost_note = "" if r.get("usd_per_chip_hour") is not None else \
                    f' <span class="tag" title="{_e(r.get("cost_basis"))}">no price</span>'
                cells = [_num(r["ttft_ms"]), _num(r["tpot_ms"], 1), _num(r["output_tok_s_per_chip"]),
                         "yes" if r["meets_slo"] else "no", _usd(r.get("usd_per_chip_hour")) + cost_note,
                         _usd(r.get("usd_per_mtok_input")), _usd(r.get("usd_per_mtok_output")),
                         _usd(r.get("usd_per_mtok_output_all_in"))]
                if volume:
                    cells += [_num(r.get("chips_for_volume")), _usd(r.get("usd_per_day"))]
                body.append(f'<tr class="{cls}"><td>{self.chip_label(r["chip"])}</td><td>{_e(dep)}</td>'
                            + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
        vol_note = ""
        if volume:
            amount = (f"{volume['output_tokens_per_day']:,.0f} output tokens/day" if volume.get("output_tokens_per_day")
                      else f"{volume['total_tokens_per_day']:,.0f} tokens/day (input + output)")
            vol_note = (f" Volume: {amount}, {volume['headroom_frac']:.0%} headroom; chips are whole replicas of the "
                        f"deployment shown; $/day = chips × $/chip-hour × 24.")
        return f"""<section id="summary"><h2>Answer</h2>{first}{more}
<table class="summary"><caption class="note" style="caption-side:bottom;text-align:left">
Estimates. Best deployment per chip (highest output tokens/s per chip within the SLOs). $/M input and $/M output split
chip time between prefill and decode; "all chip time" $/M output charges all chip time to output tokens; a design's chip price is its unit cost with markup, before NRE. * partly estimated
chip specs; highlighted: the answer.{_e(vol_note)}</caption>
<tr>{''.join(f'<th>{_e(h)}</th>' for h in head)}</tr>{''.join(body)}</table></section>"""

    # ---- throughput vs latency ----------------------------------------------------------
    def color(self, chip: str) -> str:
        """One colour per chip, the same in every chart."""
        from plotly.colors import qualitative

        order = list(self.chips)
        palette = qualitative.D3
        return palette[order.index(chip) % len(palette)] if chip in order else "#444"

    def curves(self) -> str:
        go = self.go
        parts = []
        for model, traffic, rows in self.groups():
            fig = go.Figure()
            case = self.case(traffic)
            for r in rows:
                pts = self.section_of(model, r["chip"], traffic).get("curve") or []
                if not pts:
                    continue
                label, color = self.chip_label(r["chip"], plain=True), self.color(r["chip"])
                front = pareto_front(pts)
                for shown, subset in ((True, front), (False, [p for p in pts if p not in front])):
                    if not subset:
                        continue
                    fig.add_trace(go.Scatter(
                        x=[p["tpot_ms"] for p in subset], y=[p["output_tok_s_per_chip"] for p in subset],
                        mode="lines+markers" if shown else "markers", name=label, legendgroup=label, showlegend=shown,
                        line=dict(color=color), marker=dict(color=color, size=7 if shown else 5,
                                                            opacity=1.0 if shown else 0.35),
                        customdata=[[p["batch"], p["num_chips"], f"{p['tp']}/{p['pp']}/{p['ep']}/{p['dp']}",
                                     p["precision"], p["ttft_ms"]] for p in subset],
                        hovertemplate=("batch %{customdata[0]} · %{customdata[1]} chips · TP/PP/EP/DP %{customdata[2]} · "
                                       "%{customdata[3]}<br>TPOT %{x:.1f} ms · TTFT %{customdata[4]:,.0f} ms<br>"
                                       "%{y:,.0f} output tok/s per chip<extra>" + _e(label) + "</extra>")))
                if r.get("status") == "ok":
                    fig.add_trace(go.Scatter(x=[r["tpot_ms"]], y=[r["output_tok_s_per_chip"]], mode="markers",
                                             marker=dict(symbol="star", size=15, color=color,
                                                         line=dict(width=1, color="black")),
                                             name=f"{label}: chosen", legendgroup=label, showlegend=False,
                                             hovertemplate="chosen deployment<br>TPOT %{x:.1f} ms<br>%{y:,.0f} tok/s/chip"
                                                           "<extra>" + _e(label) + "</extra>"))
            if case.get("slo_tpot_ms"):
                fig.add_vline(x=case["slo_tpot_ms"], line_dash="dash", line_color="gray",
                              annotation_text=f"TPOT SLO {case['slo_tpot_ms']:g} ms")
            fig.update_layout(title=f"{model} · {traffic}: output throughput per chip vs time per output token",
                              xaxis_title="TPOT, ms (estimate)", yaxis_title="output tokens/s per chip (estimate)",
                              yaxis_type="log")
            parts.append(self.chart(fig, f"{model} on {traffic}: the best deployment at each batch size (sequences "
                                         "per data-parallel rank) with the SLOs lifted; lines join the points no "
                                         "other point beats on both axes (faint: beaten), stars mark the deployment "
                                         "chosen within the SLOs. Estimates."))
        return '<section id="throughput"><h2>Throughput vs latency</h2>' + "".join(parts) + "</section>"

    # ---- cost ---------------------------------------------------------------------------
    def cost(self) -> str:
        go = self.go
        parts = []
        hourly_rows = {}
        for model, traffic, rows in self.groups():
            priced = [r for r in rows if r.get("status") == "ok"
                      and self.section_of(model, r["chip"], traffic).get("cost", {}).get("available")]
            if not priced:
                continue
            fig = go.Figure()
            labels = [self.chip_label(r["chip"], plain=True) for r in priced]
            costs = [self.section_of(model, r["chip"], traffic)["cost"] for r in priced]
            for part in COST_PARTS:
                ys = [c["all_in_parts_usd_per_mtok"].get(part) for c in costs]
                if not any(ys):
                    continue
                fig.add_trace(go.Bar(name=part, x=labels, y=ys,
                                     hovertemplate="%{x}: $%{y:.3f} per M output tokens<extra>" + part + "</extra>"))
            fig.update_layout(barmode="stack", title=f"{model} · {traffic}: $ per million output tokens (all chip time), by cost",
                              yaxis_title="USD per M output tokens (estimate)")
            missing = [r["chip"] for r in rows if r not in priced]
            note = f" No price for: {', '.join(missing)}." if missing else ""
            parts.append(self.chart(fig, f"All chip time charged to output tokens; the stack splits each chip-hour "
                                         f"into amortized capex, power, hosting and operations (or rental).{note} "
                                         "Estimates."))
            for r, c in zip(priced, costs):
                hourly_rows[r["chip"]] = c
        rows_html = []
        for chip, c in hourly_rows.items():
            h = c["chip_hour"]
            money = [_usd(h.get("chip_price_usd"))] + [
                _usd(h[k] or None) for k in ("capex_usd_per_hour", "power_usd_per_hour", "hosting_usd_per_hour",
                                              "ops_usd_per_hour", "rental_usd_per_hour")]
            rows_html.append(_tr(self.chip_label(chip), _e(c["basis"]), *money, f'<b>{_usd(h["total_usd_per_hour"])}</b>',
                                 num_from=2, note=_e(c.get("basis_source"))))
        table = ("<h3>Cost of one chip-hour</h3><table><tr><th>chip</th><th>basis</th><th>price</th><th>capex/h</th>"
                 "<th>power/h</th><th>hosting/h</th><th>ops/h</th><th>rental/h</th><th>total/h</th>"
                 "<th>price or rental from</th></tr>" + "".join(rows_html) + "</table>") if rows_html else ""
        if not parts:
            parts.append('<p class="unavailable">No chip in this study has a price or rental, so nothing is priced.</p>')
        return '<section id="cost"><h2>Cost per million tokens</h2>' + "".join(parts) + table + "</section>"

    # ---- memory -------------------------------------------------------------------------
    def memory(self) -> str:
        go = self.go
        parts = []
        for model, traffic, rows in self.groups():
            ok = [r for r in rows if r.get("status") == "ok"]
            if not ok:
                continue
            mems = [self.section_of(model, r["chip"], traffic)["estimate"]["memory_gb_per_chip"] for r in ok]
            labels = [self.chip_label(r["chip"], plain=True) for r in ok]
            fig = go.Figure()
            for key, name in MEMORY_PARTS:
                fig.add_trace(go.Bar(name=name, x=labels, y=[max(m.get(key, 0.0), 0.0) for m in mems],
                                     hovertemplate="%{x}: %{y:.1f} GB<extra>" + name + "</extra>"))
            fig.update_layout(barmode="stack", title=f"{model} · {traffic}: memory per chip of the chosen deployment",
                              yaxis_title="GB per chip")
            parts.append(self.chart(fig, "Weights, KV cache of the sequences in flight and activations per chip, the "
                                         "runtime reserve, and what is left free; the bar's height is the chip's "
                                         "capacity. Estimates."))
        return '<section id="memory"><h2>Memory</h2>' + "".join(parts) + "</section>"

    # ---- volume -------------------------------------------------------------------------
    def volume(self) -> str:
        if not self.doc["inputs"].get("volume"):
            return ""
        go = self.go
        fig = go.Figure()
        any_bar = False
        for model, traffic, rows in self.groups():
            ok = [r for r in rows if r.get("usd_per_day") is not None and r.get("meets_slo")]
            if not ok:
                continue
            any_bar = True
            fig.add_trace(go.Bar(name=f"{model} · {traffic}", x=[self.chip_label(r["chip"], plain=True) for r in ok],
                                 y=[r["usd_per_day"] for r in ok],
                                 customdata=[r["chips_for_volume"] for r in ok],
                                 hovertemplate="%{x}: $%{y:,.0f}/day with %{customdata:,} chips<extra></extra>"))
        if not any_bar:
            return ""
        fig.update_layout(barmode="group", title="What the volume costs per day (options meeting the SLOs)",
                          yaxis_title="USD per day (estimate)")
        return ('<section id="volume"><h2>Fleet for the volume</h2>'
                + self.chart(fig, "Chips needed (whole replicas, with headroom) × cost per chip-hour × 24. Estimates.")
                + "</section>")

    # ---- training -----------------------------------------------------------------------
    def training(self) -> str:
        secs = [s for s in self.doc["sections"].values() if s.get("kind") == "training"]
        if not secs:
            return ""
        runs = [s["run"] for s in secs if s.get("status") == "ok"]
        notes = "".join(f'<p class="unavailable">{_e(s["title"])}: {_e(s.get("error") or s.get("status"))}</p>'
                        for s in secs if s.get("status") != "ok")
        head = '<section id="training"><h2>Training runs</h2>'
        if not runs:
            return head + notes + "</section>"
        go = self.go
        r0 = runs[0]
        what = (f"{r0['tokens'] / 1e12:g} trillion tokens at sequence length {r0['seq_len']:,}, up to "
                f"{r0['chips']:,} chips per run (the mapping search may leave some idle)")
        charts = []
        priced = [r for r in runs if r.get("usd_per_trillion_tokens") is not None]
        for key, title, axis, rs in (
                ("usd_per_trillion_tokens", "Cost per trillion training tokens", "USD per trillion tokens (estimate)",
                 priced),
                ("days", "Days of the run", "days (estimate)", runs)):
            if not rs:
                continue
            fig = go.Figure()
            for model in dict.fromkeys(r["model"] for r in rs):
                mr = [r for r in rs if r["model"] == model]
                fig.add_trace(go.Bar(name=model, x=[self.chip_label(r["chip"], plain=True) for r in mr],
                                     y=[r[key] for r in mr],
                                     hovertemplate="%{x}: %{y:,.1f}<extra>" + _e(model) + "</extra>"))
            fig.update_layout(barmode="group", title=title, yaxis_title=axis)
            charts.append(self.chart(fig, f"{title}: {what}; each chip's best training mapping "
                                          "(`tokenfab train`). Estimates."))

        def row(r: dict) -> str:
            mp = r["mapping"]
            prec = r["precision"] + ("" if r["precision"] == r.get("precision_asked", r["precision"]) else " (no FP8)")
            return _tr(_e(r["model"]), self.chip_label(r["chip"]), _num(r["chips_used"]),
                       _e(f"{mp['tp']}/{mp['pp']}/{mp['cp']}/{mp['ep']}/{mp['dp']} {mp['schedule']}"), _e(prec),
                       _num(r["step_time_s"], 2), _num(100 * r["mfu"], 1), _num(r["days"], 1),
                       _num(r["chip_hours"]), _usd(r.get("usd")), _usd(r.get("usd_per_trillion_tokens")),
                       _num(r["memory_gib_per_chip"], 1), num_from=2)

        table = ("<table><tr><th>model</th><th>chip</th><th>chips used</th><th>TP/PP/CP/EP/DP schedule</th>"
                 "<th>precision</th><th>step s</th><th>MFU %</th><th>days</th><th>chip-hours</th><th>$ per run</th>"
                 "<th>$ per T tokens</th><th>GiB per chip</th></tr>" + "".join(row(r) for r in runs) + "</table>")
        return head + "".join(charts) + table + notes + "</section>"

    # ---- serving ------------------------------------------------------------------------
    def serving(self) -> str:
        secs = [s for s in self.doc["sections"].values() if s.get("kind") == "serving"]
        if not secs:
            return ""
        ok = [s for s in secs if s.get("status") == "ok"]
        not_ok = [s for s in secs if s.get("status") != "ok"]
        notes = "".join(f'<p class="unavailable">{_e(s["title"])}: {_e(s.get("status"))} — '
                        f'{_e(s.get("reason") or s.get("error") or "")}</p>' for s in not_ok)
        if not ok:
            return f'<section id="serving"><h2>Serving latency</h2>{notes}</section>'
        go = self.go
        case = self.case(ok[0]["traffic"])
        charts = []
        for metric, slo_key, title in (("ttft_ms", "slo_ttft_ms", "time to first token"),
                                       ("tpot_ms", "slo_tpot_ms", "time per output token")):
            fig = go.Figure()
            for s in ok:
                d = s[metric]
                if not d.get("n"):
                    continue
                fig.add_trace(go.Scatter(x=d["cdf_ms"], y=d["cdf_frac"], mode="lines", line_shape="hv",
                                         name=self.chip_label(s["chip"], plain=True),
                                         line=dict(color=self.color(s["chip"])),
                                         hovertemplate="%{x:,.1f} ms: %{y:.1%} of requests<extra></extra>"))
            if case.get(slo_key):
                fig.add_vline(x=case[slo_key], line_dash="dash", line_color="gray",
                              annotation_text=f"SLO {case[slo_key]:g} ms")
            fig.update_layout(title=f"{ok[0]['model']} · {ok[0]['traffic']}: CDF of {title} per request",
                              xaxis_title=f"{title}, ms (simulated)", yaxis_title="fraction of requests",
                              yaxis_range=[0, 1.02])
            charts.append(self.chart(fig, f"Discrete-event simulation of {ok[0]['requests']:,} requests arriving at "
                                          f"{ok[0]['rate_per_s']:g}/s on each chip's chosen deployment. Estimates."))
        def row(s: dict) -> str:
            metrics = s.get("metrics") or {}
            within = metrics.get("slo_attainment")
            pcts = [_num(s[m].get(p), 1) for m in ("ttft_ms", "tpot_ms") for p in ("p50", "p90", "p99")]
            return _tr(self.chip_label(s["chip"]), _e(s.get("deployment")), *pcts,
                       _num(metrics.get("throughput_tok_s")), _num(None if within is None else 100 * within, 1),
                       num_from=2)

        rows = "".join(row(s) for s in ok)
        table = ("<table><tr><th>chip</th><th>deployment</th><th>TTFT p50</th><th>TTFT p90</th><th>TTFT p99</th>"
                 "<th>TPOT p50</th><th>TPOT p90</th><th>TPOT p99</th><th>output tok/s</th><th>% within SLOs</th></tr>"
                 + rows + "</table>")
        return f'<section id="serving"><h2>Serving latency</h2>{"".join(charts)}{table}{notes}</section>'

    # ---- build vs buy -------------------------------------------------------------------
    def build_vs_buy(self) -> str:
        sec = self.doc["sections"].get("build_vs_buy")
        if sec is None:
            return ""
        if sec.get("status") != "ok":
            return (f'<section id="build-vs-buy"><h2>Build vs buy</h2><p class="unavailable">'
                    f'{_e(sec.get("error"))}</p></section>')
        from tokenfab.cost.compare import BuildVsBuyResult
        from tokenfab.report.cost_plots import build_vs_buy_figures
        from tokenfab.specs.economics import Economics

        data = restore_infinities(sec["result"])
        result = BuildVsBuyResult.model_validate(data)
        econ = Economics.model_validate({**self.doc["inputs"]["economics"]["values"], "currency": "USD",
                                         "sources": {"default": "study"}})
        curve, bars, tornado = build_vs_buy_figures(result, econ)
        be = result.breakeven_fleet
        rows = [
            ("output tok/s per chip", _num(result.inputs.custom_tok_s_per_chip), _num(result.inputs.vendor_tok_s_per_chip)),
            ("unit price", _usd(result.inputs.custom_unit_usd) + " (fab model)",
             _usd(result.inputs.vendor_price_usd) if result.vendor_basis == "owned" else "rented"),
            ("cost per chip-hour", _usd(result.custom_chip_hour.total_usd_per_hour), _usd(result.vendor_chip_hour.total_usd_per_hour)),
            ("lifetime cost per chip", _usd(result.custom_lifetime_usd_per_chip), _usd(result.vendor_lifetime_usd_per_chip)),
            ("$/M output tokens (custom without / with NRE)",
             f"{_usd(result.custom_tokens.output_usd_per_mtok)} / {_usd(result.custom_tokens_with_nre.output_usd_per_mtok)}",
             _usd(result.vendor_tokens.output_usd_per_mtok)),
            (f"chips for {result.fleet_vendor_equiv:,.0f} vendor-chip equivalents", _num(result.custom_chips_at_fleet),
             _num(result.fleet_vendor_equiv)),
            ("total cost at that fleet", _usd(result.build_total_usd), _usd(result.buy_total_usd)),
        ]
        table = (f"<table><tr><th></th><th>build: {self.chip_label(result.custom_chip)}</th>"
                 f"<th>{_e(result.vendor_basis)}: {self.chip_label(result.vendor_chip)}</th></tr>"
                 + "".join(f'<tr><td>{_e(a)}</td><td class="num">{b}</td><td class="num">{c}</td></tr>' for a, b, c in rows)
                 + "</table>")
        head = (f"<p>NRE {_usd(result.nre.total_usd)}, time to market {result.nre.time_to_market_years:.1f} years. "
                f"Break-even: <b>{'never' if not math.isfinite(be) else f'{be:,.0f} {_e(result.vendor_chip)}-equivalents'}</b>"
                f" ({_e(result.model)}, equal delivered tokens). Estimates.</p>")
        return ('<section id="build-vs-buy"><h2>Build vs buy</h2>' + head + table
                + self.chart(curve, "Total cost of owning (and running, over the economic life) a fleet that serves the "
                                    "same tokens, against its size; the crossing is the break-even. Estimates.")
                + self.chart(bars, "The custom package's unit cost by part (fab model), the NRE by part, and the "
                                   "lifetime cost of one chip of each kind. Estimates.", height=440, top=100)
                + self.chart(tornado, "Break-even fleet when one input moves across its range (sourced ranges where "
                                      "the shipped data has them, else ±25 %). Estimates.", height=480)
                + "</section>")

    # ---- design search ------------------------------------------------------------------
    def design(self) -> str:
        sec = self.doc["sections"].get("design")
        if sec is None:
            return ""
        head = '<section id="design"><h2>Design search</h2>'
        if sec.get("status") != "ok":
            return (head + f'<p class="unavailable">{_e(sec.get("error") or sec.get("reason") or sec.get("status"))}'
                    "</p></section>")
        from tokenfab.report.explore_plots import front_figures

        st, wl, base = sec["study"], sec["workload"], sec.get("baseline") or {}
        settings = (f"<p class='note'>Workload <code>{_e(wl['name'])}</code> ({_e(wl.get('title'))}), design space "
                    f"<code>{_e((sec.get('space') or {}).get('name'))}</code>; {st['trials']} trials, sampler "
                    f"{_e(st['sampler'])}, seed {st['seed']}, objectives {_e(', '.join(sec.get('objectives') or []))} "
                    f"(all minimized); {len(sec['feasible'])} feasible, {sec['infeasible_count']} infeasible. "
                    f"Mix weights are shares of tokens (input + output); $/Mtok is the mix's. Estimates.</p>")
        verdict = (sec.get("verdict") or {}).get("text") or ""
        beats = (sec.get("verdict") or {}).get("beats_baseline")
        tag = {True: f"beats {base.get('design_id')}", False: f"does not beat {base.get('design_id')}"}.get(beats)
        verdict_html = (f"<p><b>Verdict{' — ' + _e(tag) if tag else ''}.</b> {_e(verdict)}</p>" if verdict else "")
        charts = "".join(self.chart(fig, "Every feasible design (grey) and the Pareto front (coloured by mean TPOT) "
                                         "of the mix's $/Mtok against unit cost and against mean TPOT; the star is "
                                         f"the baseline {base.get('design_id', '')}, diamonds the reference design. "
                                         "Log scale. Estimates.", height=560, right=90, bottom=110)
                         for fig in front_figures(sec))
        best_id = (sec.get("best") or {}).get("design_id")
        rows = []
        for r in [*sec["front"], *([base] if base else [])]:
            c, o = r.get("chip") or {}, r.get("objectives") or {}
            is_base = r is base
            dies = c.get("compute_dies") or 1
            area = _num(c.get("die_area_mm2") or o.get("die_area_mm2")) + (f" ({dies} dies)" if dies > 1 else "")
            vs = r.get("vs_baseline_usd_per_mtok")
            cls = ' class="best"' if r.get("design_id") == best_id else (' class="muted"' if is_base else "")
            label = (_e(r.get("design_id")) + (" (baseline)" if is_base else "")
                     + (" *" if r.get("comparable_to_baseline") else ""))
            unit = (c.get("price_usd") or o.get("unit_cost_usd")) if is_base else o.get("unit_cost_usd")
            cells = (area, _num(o.get("power_w") or c.get("power_w")), _usd(unit), _num(o.get("usd_per_mtok"), 4),
                     _num(o.get("tpot_ms"), 1), "" if vs is None else f"{vs * 100:+.0f}%")
            rows.append(f"<tr{cls}><td>{label}</td><td>{_e(c.get('process_node'))}</td>"
                        + "".join(f'<td class="num">{x}</td>' for x in cells) + "</tr>")
        table = ("<h3>Pareto front</h3><table><tr><th>design</th><th>node</th><th>die mm²</th><th>power W</th>"
                 "<th>unit cost</th><th>$/Mtok (mix)</th><th>TPOT ms (mean)</th><th>$/Mtok vs baseline</th></tr>"
                 + "".join(rows) + "</table><p class='note'>Highlighted: the front design cheapest per token. * same "
                 "process node as the baseline and die area within ±20 %. The baseline is priced at its market "
                 "price, the designs at their unit cost from the fab model. Estimates.</p>")
        infeasible = ""
        if sec["infeasible_count"]:
            counts = sec.get("infeasible_reason_counts") or {}
            items = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{v:,}</td></tr>" for k, v in counts.items())
            examples = "".join(f"<li><code>{_e(x['design_id'])}</code>: {_e('; '.join(x['reasons']))}</li>"
                               for x in sec.get("infeasible_examples", [])[:3])
            infeasible = (f"<h3>Infeasible designs</h3><p>{sec['infeasible_count']:,} of {st['trials']} trials were "
                          "infeasible; by reason (a design can fail several checks):</p><table class='narrow'>"
                          f"<tr><th>reason</th><th>designs</th></tr>{items}</table>"
                          + (f"<p class='note'>For example:</p><ul class='note'>{examples}</ul>" if examples else ""))
        return head + settings + verdict_html + charts + table + infeasible + "</section>"

    # ---- inputs and sources -------------------------------------------------------------
    def sources(self) -> str:
        d, inp = self.doc, self.doc["inputs"]
        meta = (f"<table><tr><th>study</th><td>{_e(d['study']['name'])} (<code>{_e(d['study']['file'])}</code>)</td></tr>"
                f"<tr><th>study hash</th><td><code>{_e(d['hash'])}</code> (SHA-256 of the resolved inputs, the "
                f"tokenfab version and its code fingerprint; equal hashes mean equal inputs)</td></tr>"
                f"<tr><th>tokenfab version</th><td><code>{_e(d['tokenfab_version'])}</code> · code fingerprint "
                f"<code>{_e(d.get('code_fingerprint'))}</code></td></tr>"
                f"<tr><th>generated</th><td>{_e(d['generated_utc'])}</td></tr></table>")
        traffic = "".join(
            f"<tr><td>{_e(t['name'])}</td><td class='num'>{_num(t['input_len'])}</td><td class='num'>{_num(t['output_len'])}</td>"
            f"<td class='num'>{_num(t.get('slo_ttft_ms'))}</td><td class='num'>{_num(t.get('slo_tpot_ms'))}</td>"
            f"<td class='num'>{_num(t.get('prefix_cache_hit'), 2)}</td><td>{_e(t.get('description'))}</td></tr>"
            for t in inp["traffic"])
        traffic = ("<h3>Traffic</h3><table><tr><th>name</th><th>input tokens</th><th>output tokens</th><th>TTFT SLO ms</th>"
                   "<th>TPOT SLO ms</th><th>prefix-cache hit</th><th>description</th></tr>" + traffic + "</table>")
        vol = inp.get("volume")
        vol_html = ("<h3>Volume</h3><table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_val(v)}</td></tr>"
                                                        for k, v in vol.items() if v is not None) + "</table>") if vol else ""
        econ = inp["economics"]
        flat = [(k, v, econ['sources'].get(k), k in econ['estimated_fields'])
                for k, v in econ["values"].items() if v is not None and not isinstance(v, dict)]
        for name, sub in ((k, v) for k, v in econ["values"].items() if isinstance(v, dict)):  # system: one row a field
            src = sub.get("sources") or {}
            flat += [(f"{name}.{k}", v, src.get(k, src.get("default")), k in (sub.get("estimated_fields") or []))
                     for k, v in sub.items() if k not in ("sources", "estimated_fields") and v is not None]
        econ_rows = "".join(
            f"<tr><td><code>{_e(k)}</code></td><td class='num'>{_val(v)}</td><td>{_e(src)}"
            f"{_EST_TAG if est else ''}</td></tr>" for k, v, src, est in flat)
        quotes = "".join(f"<li>{_e(c)}: ${q['usd_per_hour']}/h ({_e(q['date'])}, {_e(q['source'])})</li>"
                         for c, q in (econ.get("market_quotes") or {}).items())
        econ_html = (f"<h3>Economics</h3><p class='note'>Preset <code>{_e(econ['preset'])}</code>"
                     f"{', file ' + '<code>' + _e(econ['file']) + '</code>' if econ.get('file') else ''}"
                     f"{', market rental prices where quoted' if econ.get('market_rental') else ''}; "
                     f"overrides set by the study: {_e(', '.join(econ['overrides']) or 'none')}.</p>"
                     + (f"<ul>{quotes}</ul>" if quotes else "")
                     + f"<table class='sources'><tr><th>field</th><th>value</th><th>source</th></tr>{econ_rows}</table>")
        models = "".join(
            f"<tr><td>{_e(mid)}</td><td>{_e(m['family'])}</td><td class='num'>{_num(m['total_params_b'], 1)}</td>"
            f"<td class='num'>{_num(m['active_params_b'], 1)}</td><td>{_e(m.get('source') or m['ref'])}</td></tr>"
            for mid, m in inp["models"].items())
        models = ("<h3>Models</h3><table><tr><th>model</th><th>family</th><th>params, B</th><th>active params, B</th>"
                  "<th>source</th></tr>" + models + "</table>")
        eff = sorted({s["estimate"].get("efficiency_source", "") for s in d["sections"].values()
                      if s.get("kind") == "estimate" and s.get("status") == "ok"} - {""})
        eff_html = ("<h3>Engine efficiency</h3><ul>" + "".join(f"<li>{_e(x)}</li>" for x in eff) + "</ul>") if eff else ""
        chips = []
        for cid, c in inp["chips"].items():
            default = c["sources"].get("default", "")
            rows = "".join(
                f"<tr><td><code>{_e(k)}</code></td><td class='num'>{_val(v)}</td>"
                f"<td>{_e(c['sources'].get(k, default))}{_EST_TAG if k in c['estimated_fields'] else ''}</td></tr>"
                for k, v in c["values"].items())
            chips.append(
                f"<details open id='chip-{_slug(cid)}'><summary>{_e(cid)} — {_e(c['name'])} · {_e(c['vendor'])} · "
                f"spec confidence: {_e(c['spec_confidence'])}</summary>"
                f"<p class='note'>From <code>{_e(c['ref'])}</code>. {_e(c.get('notes'))}</p>"
                f"<table class='sources'><tr><th>field</th><th>value</th><th>source</th></tr>{rows}</table></details>")
        sections = "".join(_tr(f"<code>{_e(k)}</code>", _e(s.get("status")), f"<code>{_e(s.get('hash'))}</code>",
                               num_from=9) for k, s in d["sections"].items())
        sections = ("<h3>Sections</h3><table><tr><th>section</th><th>status</th><th>input hash</th></tr>"
                    + sections + "</table>")
        return ('<section id="sources" class="sources-section"><h2>Inputs and sources</h2>' + meta + traffic + vol_html
                + econ_html + models + eff_html + "<h3>Chips</h3>" + "".join(chips) + sections + "</section>")

    # ---- page ---------------------------------------------------------------------------
    def page(self) -> str:
        d = self.doc
        body = [self.summary(), self.curves(), self.cost(), self.memory(), self.volume(), self.serving(),
                self.build_vs_buy(), self.design(), self.training(), self.sources()]
        toc = [("summary", "Answer"), ("throughput", "Throughput vs latency"), ("cost", "Cost"), ("memory", "Memory")]
        if d["inputs"].get("volume"):
            toc.append(("volume", "Volume"))
        if any(s.get("kind") == "serving" for s in d["sections"].values()):
            toc.append(("serving", "Serving"))
        if "build_vs_buy" in d["sections"]:
            toc.append(("build-vs-buy", "Build vs buy"))
        if "design" in d["sections"]:
            toc.append(("design", "Design search"))
        if any(s.get("kind") == "training" for s in d["sections"].values()):
            toc.append(("training", "Training"))
        toc.append(("sources", "Inputs & sources"))
        css = resources.files("tokenfab.report").joinpath("study.css").read_text(encoding="utf-8")
        title = d["study"].get("title") or d["study"]["name"]
        plotly_js = self.offline.get_plotlyjs()
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tokenfab {_e(d['tokenfab_version'])}">
<meta name="tokenfab-study-hash" content="{_e(d['hash'])}">
<meta name="tokenfab-chart-count" content="{self.charts}">
<title>{_e(title)} — tokenfab study</title>
<style>{css}</style>
<script type="text/javascript">{plotly_js}</script>
</head><body><main>
<header class="report-head"><h1>{_e(title)}</h1>
<p class="lede">{_e(d['study'].get('description'))}</p>
<p class="meta">Study <code>{_e(d['study']['name'])}</code> · hash <code>{_e(d['hash'])}</code> · tokenfab
{_e(d['tokenfab_version'])} · {_e(d['generated_utc'])}</p>
<p class="estimate-banner"><b>Estimates.</b> {_e(d['summary']['estimate_note'])} Chips marked * have
performance fields that are themselves estimates; chips marked hypothetical do not exist. Every input and its source is
listed under <a href="#sources">Inputs and sources</a>.</p>
<nav class="toc">{''.join(f'<a href="#{a}">{_e(t)}</a>' for a, t in toc)}</nav></header>
{''.join(body)}
</main>
<script>
window.addEventListener('beforeprint', function () {{
  document.querySelectorAll('.js-plotly-plot').forEach(function (p) {{ Plotly.Plots.resize(p); }});
}});
</script>
</body></html>
"""


def pareto_front(points: list[dict]) -> list[dict]:
    """Points no other point beats on both lower TPOT and higher tok/s per chip, by TPOT."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["tpot_ms"], -p["output_tok_s_per_chip"])):
        if p["output_tok_s_per_chip"] > best:
            front.append(p)
            best = p["output_tok_s_per_chip"]
    return front


def restore_infinities(bvb: dict) -> dict:
    """A build-vs-buy result read from JSON: the break-evens stored as null (never) become ∞ again."""
    out = json.loads(json.dumps(bvb))
    if out.get("breakeven_fleet") is None:
        out["breakeven_fleet"] = math.inf
    for bar in out.get("tornado", []):
        for k in ("breakeven_at_low", "breakeven_at_high"):
            if bar.get(k) is None:
                bar[k] = math.inf
    return out


def render_study_html(doc: dict) -> str:
    """The report page for a results document (as `run_study` writes it)."""
    return _Report(doc).page()


def chart_count(html_text: str) -> int:
    """Charts a rendered report holds (from its `tokenfab-chart-count` meta tag)."""
    import re

    m = re.search(r'<meta name="tokenfab-chart-count" content="(\d+)">', html_text)
    return int(m.group(1)) if m else 0
