"""The fleet plan as a linear program (HiGHS through scipy): what to buy, and who serves what.

Indices: chip c, period t (length Δ years, starting Δ·t years after the start), workload w,
phase p ∈ {prefill, decode}. Variables:

    b[c,t]      units of c bought at the start of t (integer with `integer_units`)
    a[c,w,p,t]  units of c serving phase p of workload w in t (only where c can serve w)
    f[w,t]      fraction of w's peak demand served in t (max_tokens; fixed at 1 for min_cost)

A unit bought at τ is installed while (t − τ)·Δ < L (L: depreciation life); `init[c,t]` are the
units already installed. With n[c,t] = Σ_τ installed b[c,τ] + init[c,t]:

    Σ_{w,p} a[c,w,p,t] ≤ n[c,t]                         (assignment; dual: value of one more unit)
    Σ_c cap[c,w,p]·m[c,t]·a[c,w,p,t] ≥ f[w,t]·dem[w,p,t]  (demand: prompt or generated tok/s at peak)
    Σ_c kW[c]·n[c,t] ≤ 1000·MW_cap[t]                    (power at the facility: TDP × server × PUE)
    Σ_c capex[c,t]·b[c,t] ≤ budget[t]                   (capital budget)
    Σ_{c of vendor v} b[c,t] ≤ cap_v[t];  b[c,t] ≤ cap_c[t]; b[c,t] = 0 before it is available
    Σ_{c made with memory k} stacks[c]·b[c,t] ≤ stacks_k[t]  (memory supply, e.g. domestic HBM)
    Σ_{c packaged with k} b[c,t] ≤ packages_k[t]              (packaging supply, e.g. domestic 2.5D)

m[c,t] is the maturity ramp (a new chip's software reaching full speed). Discounting at rate r:
d(y) = (1 + r)^−y. Cost (present value at the start, USD):

    Σ b[c,τ]·capex[c,τ]·(d(Δτ) − book(τ)·d(Δ·T)) + Σ n[c,t]·opex[c]·d(Δt)

where book(τ) = max(0, 1 − (T − τ)·Δ / L) is the straight-line book value left at the horizon,
credited back so a chip bought late is not charged its whole life. `min_cost` minimises it with
f = 1; `max_tokens` maximises Σ d(Δt)·f[w,t]·tokens[w,t] (tokens served, discounted) and breaks
ties by cost. The shadow prices (duals) come from the LP relaxation (HiGHS marginals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

PHASES = ("prefill", "decode")
_MONEY = 1e-6
"""Money in the matrices is in $M, tokens/s in thousands: keeps HiGHS well scaled."""
_TOK = 1e-3


@dataclass
class PlanProblem:
    """The numbers of one fleet plan, as arrays (USD, tok/s, kW)."""

    chips: list[str]
    workloads: list[str]
    periods: list[str]
    period_years: float
    cap: np.ndarray
    """[C, W, 2] tokens/s one unit serves in each phase (0: cannot)."""
    demand: np.ndarray
    """[W, 2, T] peak tokens/s to serve: prompt (prefill) and generated (decode)."""
    capex_usd: np.ndarray
    """[C, T] capital cost of one unit bought in t (chip, system share, spares)."""
    opex_usd: np.ndarray
    """[C] running cost of one installed unit for one period (power, hosting, operations)."""
    kw: np.ndarray
    """[C] facility power one installed unit provisions, kW."""
    available: np.ndarray
    """[C, T] bool: can be bought in t."""
    life_years: float
    discount_rate: float
    maturity: np.ndarray | None = None
    """[C, T] fraction of full speed in t (None: 1)."""
    buy_cap: np.ndarray | None = None
    """[C, T] most units buyable (inf: none)."""
    vendor_caps: list[tuple[str, list[int], np.ndarray]] = field(default_factory=list)
    """(vendor, chip indices, [T] cap)."""
    memory_caps: list[tuple[str, list[int], list[float], np.ndarray]] = field(default_factory=list)
    """(memory id, chip indices, stacks per unit of each, [T] stacks available)."""
    packaging_caps: list[tuple[str, list[int], np.ndarray]] = field(default_factory=list)
    """(packaging id, chip indices, [T] packages available)."""
    power_cap_kw: np.ndarray | None = None
    """[T] facility power cap, kW (inf: none)."""
    budget_usd: np.ndarray | None = None
    """[T] capital budget, USD (inf: none)."""
    initial: np.ndarray | None = None
    """[C, T] units already installed."""
    objective: str = "min_cost"
    integer_units: bool = False
    tokens_weight: np.ndarray | None = None
    """[W, T] tokens in period t if all of w's demand is served (max_tokens objective)."""
    training: list[bool] | None = None
    """[W] True for a training workload: its demand and capacity are tokens trained per second, in
    the first phase; the second phase demands nothing (None: all serving)."""

    min_served: np.ndarray | None = None
    """[W] least fraction of each workload's demand served under `max_tokens` (None: 0)."""

    def phase_name(self, w: int, ph: int) -> str:
        """`prefill`/`decode`, or `training` for the first phase of a training workload."""
        return "training" if self.training and self.training[w] and ph == 0 else PHASES[ph]

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.chips), len(self.workloads), len(self.periods)

    def installed(self) -> np.ndarray:
        """[T(τ), T(t)] 1 where a unit bought at τ is installed in t."""
        T = len(self.periods)
        tau, t = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        age = (t - tau) * self.period_years
        return ((age >= 0) & (age < self.life_years - 1e-9)).astype(float)

    def discount(self, years) -> np.ndarray:
        return (1.0 + self.discount_rate) ** (-np.asarray(years, dtype=float))

    def book_left(self) -> np.ndarray:
        """[T] book value left at the horizon of a unit bought at τ, fraction."""
        T = len(self.periods)
        held = (T - np.arange(T)) * self.period_years
        return np.clip(1.0 - held / self.life_years, 0.0, 1.0)

    def unit_cost_pv(self) -> np.ndarray:
        """[C, T] present value of buying one unit at τ and running it to its retirement or the horizon, USD."""
        T = len(self.periods)
        d = self.discount(np.arange(T) * self.period_years)
        capital = self.capex_usd * (d - self.book_left() * self.discount(T * self.period_years))[None, :]
        running = self.opex_usd[:, None] * (self.installed() @ d)[None, :]
        return capital + running


@dataclass
class Constraint:
    """One row of the LP: what it is, for the binding report."""

    kind: str
    """`assignment`, `demand`, `power`, `budget`, `vendor supply`, `memory supply`, `packaging supply`,
    `chip supply`."""
    period: int
    name: str
    """Chip, workload/phase or vendor it is about ('' for power and budget)."""
    scale: float
    """Row units per natural unit (so a dual × scale is per natural unit)."""


@dataclass
class Solution:
    """An optimal plan."""

    buy: np.ndarray
    """[C, T] units bought."""
    alloc: np.ndarray
    """[C, W, 2, T] units assigned."""
    served_frac: np.ndarray
    """[W, T] fraction of peak demand served."""
    fleet: np.ndarray
    """[C, T] units installed."""
    cost_pv_usd: float
    binding: list[dict]
    """Binding constraints with shadow prices, largest first."""


class Infeasible(Exception):
    """No plan meets every constraint (the LP says so)."""


def _layout(p: PlanProblem):
    C, W, T = p.shape
    servable = p.cap > 0  # [C, W, 2]
    idx = np.argwhere(servable)  # rows (c, w, ph)
    n_buy = C * T
    n_alloc = len(idx) * T
    n_f = W * T if p.objective == "max_tokens" else 0
    return idx, n_buy, n_alloc, n_f


def build(p: PlanProblem, chip_caps_as_rows: bool = False):
    """(c, A, lb, ub, bounds, rows, idx): the LP in scipy's form, money in $M and tokens/s in thousands.
    `chip_caps_as_rows`: per-chip buy caps as rows (`chip supply`) rather than bounds."""
    C, W, T = p.shape
    idx, n_buy, n_alloc, n_f = _layout(p)
    n = n_buy + n_alloc + n_f
    inst = p.installed()  # [tau, t]
    mat = p.maturity if p.maturity is not None else np.ones((C, T))
    init = p.initial if p.initial is not None else np.zeros((C, T))

    def buy_col(c, t):
        return c * T + t

    def alloc_col(k, t):
        return n_buy + k * T + t

    rows_i, cols_i, vals = [], [], []
    lb, ub, meta = [], [], []

    def add_row(cols, coefs, lo, hi, con: Constraint):
        r = len(lb)
        rows_i.extend([r] * len(cols))
        cols_i.extend(cols)
        vals.extend(coefs)
        lb.append(lo)
        ub.append(hi)
        meta.append(con)

    # assignment: Σ a − Σ_τ inst·b ≤ init
    for c in range(C):
        ks = np.nonzero(idx[:, 0] == c)[0]
        for t in range(T):
            taus = np.nonzero(inst[:, t])[0]
            cols = [alloc_col(k, t) for k in ks] + [buy_col(c, tau) for tau in taus]
            coefs = [1.0] * len(ks) + [-1.0] * len(taus)
            add_row(cols, coefs, -np.inf, init[c, t], Constraint("assignment", t, p.chips[c], 1.0))
    # demand: Σ cap·m·a − f·dem ≥ 0  (or ≥ dem), in thousands of tok/s
    for w in range(W):
        for ph in range(2):
            ks = np.nonzero((idx[:, 1] == w) & (idx[:, 2] == ph))[0]
            for t in range(T):
                dem = p.demand[w, ph, t] * _TOK
                if not len(ks) and dem == 0:  # nothing asked (a training workload's second phase)
                    continue
                cols = [alloc_col(k, t) for k in ks]
                coefs = [p.cap[idx[k, 0], w, ph] * mat[idx[k, 0], t] * _TOK for k in ks]
                name = f"{p.workloads[w]} {p.phase_name(w, ph)}"
                if p.objective == "max_tokens":
                    cols.append(n_buy + n_alloc + w * T + t)
                    coefs.append(-dem)
                    add_row(cols, coefs, 0.0, np.inf, Constraint("demand", t, name, _TOK))
                else:
                    add_row(cols, coefs, dem, np.inf, Constraint("demand", t, name, _TOK))
    # power (kW → MW rows)
    if p.power_cap_kw is not None:
        for t in range(T):
            if not np.isfinite(p.power_cap_kw[t]):
                continue
            cols, coefs = [], []
            for c in range(C):
                for tau in np.nonzero(inst[:, t])[0]:
                    cols.append(buy_col(c, tau))
                    coefs.append(p.kw[c] / 1000.0)
            rhs = (p.power_cap_kw[t] - float(init[:, t] @ p.kw)) / 1000.0
            add_row(cols, coefs, -np.inf, rhs, Constraint("power", t, "", 1.0))
    if p.budget_usd is not None:
        for t in range(T):
            if not np.isfinite(p.budget_usd[t]):
                continue
            add_row([buy_col(c, t) for c in range(C)], list(p.capex_usd[:, t] * _MONEY), -np.inf,
                    p.budget_usd[t] * _MONEY, Constraint("budget", t, "", _MONEY))
    for vendor, members, caps in p.vendor_caps:
        for t in range(T):
            if np.isfinite(caps[t]):
                add_row([buy_col(c, t) for c in members], [1.0] * len(members), -np.inf, caps[t],
                        Constraint("vendor supply", t, vendor, 1.0))
    for memory, members, stacks, caps in p.memory_caps:
        for t in range(T):
            if np.isfinite(caps[t]):
                add_row([buy_col(c, t) for c in members], list(stacks), -np.inf, caps[t],
                        Constraint("memory supply", t, memory, 1.0))
    for packaging, members, caps in p.packaging_caps:
        for t in range(T):
            if np.isfinite(caps[t]):
                add_row([buy_col(c, t) for c in members], [1.0] * len(members), -np.inf, caps[t],
                        Constraint("packaging supply", t, packaging, 1.0))
    bcap = p.buy_cap if p.buy_cap is not None else np.full((C, T), np.inf)
    if chip_caps_as_rows:
        for c in range(C):
            for t in range(T):
                if p.available[c, t] and np.isfinite(bcap[c, t]):
                    add_row([buy_col(c, t)], [1.0], -np.inf, bcap[c, t], Constraint("chip supply", t, p.chips[c], 1.0))
        bcap = np.full((C, T), np.inf)
    A = sparse.csr_array((vals, (rows_i, cols_i)), shape=(len(lb), n))
    # objective
    obj = np.zeros(n)
    cost = p.unit_cost_pv() * _MONEY  # [C, T]
    if p.objective == "max_tokens":
        d = p.discount(np.arange(T) * p.period_years)
        tw = p.tokens_weight if p.tokens_weight is not None else np.ones((W, T))
        gain = (tw * d[None, :])
        gain = gain / max(gain.max(), 1e-30)  # 1 = the most valuable period's whole demand
        obj[n_buy + n_alloc:] = -gain.ravel()
        obj[:n_buy] = cost.ravel() * (1e-6 / max(cost.max(), 1e-30))  # tie-break: cheapest plan
    else:
        obj[:n_buy] = cost.ravel()
        obj[n_buy:n_buy + n_alloc] = 1e-9  # no idle assignment
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    hi[:n_buy] = np.where(p.available, bcap, 0.0).ravel()
    if n_f:
        hi[n_buy + n_alloc:] = 1.0
        if p.min_served is not None:
            lo[n_buy + n_alloc:] = np.repeat(np.clip(p.min_served, 0.0, 1.0), T)
    return obj, A, np.array(lb), np.array(ub), (lo, hi), meta, idx


def solve(p: PlanProblem) -> Solution:
    """The optimal plan; raises `Infeasible` when none exists."""
    C, W, T = p.shape
    obj, A, lb, ub, (lo, hi), meta, idx = build(p)
    _, n_buy, n_alloc, n_f = _layout(p)
    # LP relaxation (duals); rows split into ≤ and ≥ forms for linprog
    upper = np.isfinite(ub)
    lower = np.isfinite(lb)
    A_ub = sparse.vstack([A[upper], -A[lower]]).tocsr()
    b_ub = np.concatenate([ub[upper], -lb[lower]])
    res = linprog(obj, A_ub=A_ub, b_ub=b_ub, bounds=np.column_stack([lo, hi]), method="highs")
    if res.status == 2:
        raise Infeasible("infeasible")
    if res.status != 0:
        raise RuntimeError(f"the solver stopped: {res.message}")
    x = res.x
    duals = res.ineqlin.marginals  # ∂objective/∂b_ub
    row_dual = np.zeros(len(lb))
    row_dual[np.nonzero(upper)[0]] += duals[:upper.sum()]
    row_dual[np.nonzero(lower)[0]] -= duals[upper.sum():]
    if p.integer_units:
        integrality = np.zeros(len(obj))
        integrality[:n_buy] = 1
        r2 = milp(obj, constraints=LinearConstraint(A, lb, ub), integrality=integrality, bounds=Bounds(lo, hi),
                  options={"mip_rel_gap": 1e-9})
        if r2.status == 2 or r2.x is None:
            raise Infeasible("infeasible in whole units")
        x = r2.x
    buy = np.maximum(x[:n_buy].reshape(C, T), 0.0)
    if p.integer_units:
        buy = np.round(buy)
    alloc = np.zeros((C, W, 2, T))
    a = np.maximum(x[n_buy:n_buy + n_alloc].reshape(len(idx), T), 0.0)
    for k, (c, w, ph) in enumerate(idx):
        alloc[c, w, ph] = a[k]
    served = x[n_buy + n_alloc:].reshape(W, T) if n_f else np.ones((W, T))
    init = p.initial if p.initial is not None else np.zeros((C, T))
    fleet = buy @ p.installed() + init
    cost_pv = float((p.unit_cost_pv() * buy).sum() +
                    (init * p.opex_usd[:, None] * p.discount(np.arange(T) * p.period_years)[None, :]).sum())
    return Solution(buy=buy, alloc=alloc, served_frac=np.clip(served, 0, 1), fleet=fleet, cost_pv_usd=cost_pv,
                    binding=_binding(p, meta, row_dual, res, n_buy))


def _binding(p: PlanProblem, meta: list[Constraint], row_dual: np.ndarray, res, n_buy: int) -> list[dict]:
    """Constraints whose shadow price is not zero: what one more unit of each is worth (present value)."""
    if p.objective == "min_cost":
        scale_obj, what = 1.0 / _MONEY, "USD (present value)"
    else:  # objective units → discounted tokens (build() normalised the gain by its largest entry)
        T = len(p.periods)
        tw = p.tokens_weight if p.tokens_weight is not None else np.ones((len(p.workloads), T))
        scale_obj, what = float((tw * p.discount(np.arange(T) * p.period_years)[None, :]).max()), "discounted tokens"
    unit = {"assignment": "per unit installed", "demand": "per tok/s of peak demand", "power": "per MW",
            "budget": "per USD of budget", "vendor supply": "per unit", "memory supply": "per stack",
            "packaging supply": "per package"}
    out = []
    for con, dual in zip(meta, row_dual):
        if abs(dual) < 1e-9:
            continue
        # one more unit of the resource (rhs +1 natural unit) changes the objective by dual × scale
        value = -dual * con.scale * scale_obj
        if con.kind == "demand":
            value = -value  # one more tok/s of demand costs this much
        out.append({"constraint": con.kind, "period": p.periods[con.period], "name": con.name,
                    "shadow_price": float(value), "unit": f"{what} {unit[con.kind]}"})
    upper = getattr(res, "upper", None)
    if upper is not None and upper.marginals is not None and p.buy_cap is not None:
        C, _, T = p.shape
        m = upper.marginals[:n_buy].reshape(C, T)
        for c, t in zip(*np.nonzero(np.abs(m) > 1e-9)):
            if p.available[c, t] and np.isfinite(p.buy_cap[c, t]):
                out.append({"constraint": "chip supply", "period": p.periods[t], "name": p.chips[c],
                            "shadow_price": float(-m[c, t] * scale_obj), "unit": f"{what} per unit"})
    order = {"power": 0, "budget": 1, "vendor supply": 2, "memory supply": 2, "packaging supply": 2, "chip supply": 3, "assignment": 4,
             "demand": 5}
    out.sort(key=lambda b: (order[b["constraint"]], -abs(b["shadow_price"])))
    return out


ELASTIC = {"power": ("power",), "budget": ("budget",),
           "supply": ("vendor supply", "memory supply", "packaging supply", "chip supply")}
"""Constraint families that may be relaxed to explain an infeasible plan."""


def shortfall(p: PlanProblem, families: tuple[str, ...]) -> list[tuple[str, str, str, float]] | None:
    """Relax the constraints of `families` with slack and minimise the slack: [(kind, period, name,
    amount)] of the slack needed (MW, USD, units), largest first; None when even that is infeasible."""
    kinds = {k for f in families for k in ELASTIC[f]}
    obj, A, lb, ub, (lo, hi), meta, _ = build(p, chip_caps_as_rows="supply" in families)
    rows = [i for i, m in enumerate(meta) if m.kind in kinds]
    n0 = A.shape[1]
    S = sparse.csr_array((np.full(len(rows), -1.0), (rows, np.arange(len(rows)))), shape=(A.shape[0], len(rows)))
    A2 = sparse.hstack([A, S]).tocsr()
    c2 = np.concatenate([np.zeros(n0), np.ones(len(rows))])
    upper, lower = np.isfinite(ub), np.isfinite(lb)
    A_ub = sparse.vstack([A2[upper], -A2[lower]]).tocsr()
    b_ub = np.concatenate([ub[upper], -lb[lower]])
    bounds = np.column_stack([np.concatenate([lo, np.zeros(len(rows))]), np.concatenate([hi, np.full(len(rows), np.inf)])])
    res = linprog(c2, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    out = []
    for j, r in enumerate(rows):
        s = res.x[n0 + j]
        if s > 1e-7:
            m = meta[r]
            out.append((m.kind, p.periods[m.period], m.name, s / m.scale))
    return sorted(out, key=lambda x: (p.periods.index(x[1]), -x[3]))
