"""VLM serving rows VL0006-VL0017 (catalog/measurements/vlm.csv, issue 18): SGLang's cookbook runs of
Qwen3-VL-235B-A22B on 8x B200 and Qwen2.5-VL-72B on 8x MI300X, two 720p images per request, at 1 and
100 closed-loop clients. Their images are counted by each family's rule and the count agrees with
what the benchmark logged; every row is predicted at the load it states."""

import csv

import pytest

from tokenfab.catalog import load_model
from tokenfab.specs import Traffic
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate import predict_row
from tokenfab.validate.datasets import measurements_dir
from tokenfab.validate.workloads import with_row_media

NEW = [f"VL{i:04d}" for i in range(6, 18)]


def rows() -> dict[str, MeasurementRow]:
    path = measurements_dir() / "vlm.csv"
    out = [MeasurementRow.model_validate({k: (v if v != "" else None) for k, v in r.items()})
           for r in csv.DictReader(path.open())]
    return {r.id: r for r in out}


# (row, logged "Total input vision tokens", requests, images per request): the run's count per image
# is the family's rule plus <|vision_start|> and <|vision_end|> (2 tokens), as for VL0001.
LOGGED = [
    # Qwen3-VL, 16 px patches, 2x2 merge: 1280x720 -> 1280 x 704 (multiples of 32) -> 80 x 44 / 4 = 880;
    # 17,640 / 10 requests / 2 images = 882 = 880 + 2.
    ("VL0006", 17640, 10, 2),
    ("VL0009", 1764000, 1000, 2),
    # Qwen2.5-VL, 14 px patches: 1280x720 -> 1288 x 728 (multiples of 28) -> 92 x 52 / 4 = 1,196;
    # 23,960 / 10 / 2 = 1,198 = 1,196 + 2.
    ("VL0012", 23960, 10, 2),
    ("VL0015", 2396000, 1000, 2),
]


@pytest.mark.parametrize("rid,vision,requests,images", LOGGED)
def test_image_tokens_by_the_family_rule_match_the_logged_count(rid, vision, requests, images):
    row = rows()[rid]
    t = with_row_media(Traffic(input_len=round(row.input_len), output_len=round(row.output_len)), row.notes)
    assert (t.images, t.image_width_px, t.image_height_px) == (images, 1280, 720)
    per_image = load_model(row.model).vision.llm_tokens(t.image_height_px, t.image_width_px)
    assert per_image + 2 == vision / requests / images


def test_the_new_rows_are_usable_and_state_their_load():
    r = rows()
    for rid in NEW:
        row = r[rid]
        assert row.usable and row.batch in (1, 100) and row.tp == 8 and row.num_chips == 8
        assert row.notes.startswith("images=2 image=1280x720")
    # one run, three metrics: the rows of a run share their lengths and load
    for first in ("VL0006", "VL0009", "VL0012", "VL0015"):
        i = int(first[2:])
        run = [r[f"VL{j:04d}"] for j in range(i, i + 3)]
        assert {x.metric for x in run} == {"output_tok_s", "ttft_ms_mean", "tpot_ms_mean"}
        assert len({(x.input_len, x.output_len, x.batch, x.hardware, x.model) for x in run}) == 1


@pytest.mark.parametrize("low,high", [("VL0006", "VL0009"), ("VL0012", "VL0015")])
def test_a_hundred_clients_deliver_more_tokens_at_a_slower_tpot_than_one(low, high):
    # Measured: Qwen3-VL on B200 86.7 -> 2,357 tok/s (TPOT 11.3 -> 39.9 ms); Qwen2.5-VL on MI300X
    # 111 -> 1,124 tok/s (7.8 -> 80.3 ms). Batching raises throughput and stretches each step.
    r = rows()
    tok_1, _ = predict_row(r[low])
    tok_100, _ = predict_row(r[high])
    tpot_1, _ = predict_row(r[f"VL{int(low[2:]) + 2:04d}"])
    tpot_100, _ = predict_row(r[f"VL{int(high[2:]) + 2:04d}"])
    assert tok_100 > 5 * tok_1
    assert tpot_100 > tpot_1
