"""One pricing path (issue 15 item 11): every command that prices a token deployment — estimate and
compare (`api.with_cost`), studies (`study.sections.price`), the design search
(`explore.evaluate.price`) and capacity plans (`serving.plan.chip_hour_usd`) — goes through
`cost.tco.price_deployment`, so one deployment gets one price wherever it is asked."""

import pytest

from tokenfab import api, catalog
from tokenfab.cost import tco
from tokenfab.explore import evaluate as explore_eval
from tokenfab.serving import plan as serving_plan
from tokenfab.study import sections


def test_price_deployment_worked_by_hand():
    # One pool rented at $2/h, half its time in prefill, 1,000 prompt and 500 generated tokens/s per
    # chip: input $/Mtok = 2 x 0.5 / 3600 / 1000 x 1e6 = 0.2778; output = 2 x 0.5 / 3600 / 500 x 1e6 = 0.5556.
    h100 = catalog.load_chip("h100-sxm")
    econ_2 = tco.default_economics().with_overrides({"rental_usd_per_chip_hour": 2.0}, origin="test")
    one = tco.price_deployment([("aggregated", h100, 1.0)], 1000.0, 500.0, 0.5, econ_2)
    assert one.usd_per_chip_hour == pytest.approx(2.0) and one.basis == "rental"
    assert one.tokens.input_usd_per_mtok == pytest.approx(0.27778, rel=1e-4)
    assert one.tokens.output_usd_per_mtok == pytest.approx(0.55556, rel=1e-4)
    assert tco.price_deployment([("aggregated", h100, 1.0)], None, None, 0.0, econ_2).tokens is None  # chip-hour only


def test_two_pools_at_their_own_prices():
    h200, h20 = catalog.load_chip("h200-sxm"), catalog.load_chip("h20")
    pools = [("prefill", h200, 0.4), ("decode", h20, 0.6)]
    p = tco.price_deployment(pools, 1000.0, 500.0, 0.9)
    hp, hd = (tco.chip_hour_cost_for(c).total_usd_per_hour for c in (h200, h20))
    mean = 0.4 * hp + 0.6 * hd
    assert p.usd_per_chip_hour == pytest.approx(mean)
    assert p.prefill_cost_share == pytest.approx(0.4 * hp / mean)  # not the engine's time share (0.9)
    assert p.tokens.output_usd_per_mtok == pytest.approx(mean * (1 - 0.4 * hp / mean) / 3600 / 500 * 1e6)
    # Capacity plans weigh pools by their chips: 4 prefill and 6 decode chips are the same mix.
    usd_h, basis = serving_plan.chip_hour_usd(h200, [{"role": "prefill", "chip": "h200-sxm", "chips": 4},
                                                     {"role": "decode", "chip": "h20", "chips": 6}])
    assert usd_h == pytest.approx(mean) and "owned" in basis


@pytest.mark.parametrize("model, chip", [("llama-3.1-8b", "h100-sxm")])
def test_every_caller_quotes_the_same_price(model, chip):
    spec = catalog.load_chip(chip)
    est = api.estimate(model, spec, num_chips=1, tp=1)
    econ = tco.default_economics()
    row = api.with_cost(est, chip_specs={chip: spec})
    study = sections.price(spec, est, econ)
    dep = {"input_tok_s_per_chip": est.input_tok_s_per_chip, "output_tok_s_per_chip": est.output_tok_s_per_chip,
           "prefill_time_share": est.prefill_time_share, "pools": est.pools}
    search = explore_eval.price(dep, spec, econ)
    for other in (study, search):
        assert other["usd_per_mtok_input"] == pytest.approx(row["usd_per_mtok_input"])
        assert other["usd_per_mtok_output"] == pytest.approx(row["usd_per_mtok_output"])
        assert other["usd_per_chip_hour"] == pytest.approx(row["usd_per_chip_hour"])
    assert serving_plan.chip_hour_usd(spec)[0] == pytest.approx(row["usd_per_chip_hour"])


def test_a_deployment_without_pools_is_refused():
    with pytest.raises(Exception, match="at least one pool"):
        tco.price_deployment([], 1.0, 1.0, 0.5)
