"""Fleet planning over time: what to buy each period and which workload and phase each chip serves.

`scenario` (the YAML schema), `capacity` (tok/s per chip and phase from tokenfab's estimate,
cached), `lp` (the linear program, HiGHS via scipy), `plan` (scenario → plan dict), `diagnose`
(one line for an infeasible scenario).
"""
