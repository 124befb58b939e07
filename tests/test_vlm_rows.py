"""VLM serving rows (catalog/measurements/vlm.csv): their images are counted into the prompt by the
model family's rules, and the count agrees with what the benchmark itself logged (issue 18)."""

import csv

import pytest

from tokenfab.catalog import load_model
from tokenfab.specs import Traffic
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate import predict_row
from tokenfab.validate.datasets import measurements_dir, shipped_csvs
from tokenfab.validate.workloads import with_row_media


def rows():
    path = measurements_dir() / "vlm.csv"
    return [MeasurementRow.model_validate({k: (v if v != "" else None) for k, v in r.items()})
            for r in csv.DictReader(path.open())]


def test_vlm_rows_ship_and_every_usable_one_states_its_images():
    assert measurements_dir() / "vlm.csv" in shipped_csvs()
    usable = [r for r in rows() if r.usable]
    assert usable, "at least one usable VLM serving row"
    for r in rows():
        assert r.source_ref and r.model.startswith("qwen")
        # an unusable row says why first
        assert r.usable or r.notes.startswith("UNUSABLE")
    assert all("images=" in r.notes and "image=" in r.notes for r in usable)


def test_the_row_image_tokens_match_the_benchmark_count():
    # VL0001: sglang counted 344,704 vision tokens over 128 requests = 2,693 per 1080p image; Qwen2.5-VL's
    # rule gives 78 x 138 patches / 4 = 2,691 (the run's 2 extra are <|vision_start|>/<|vision_end|>).
    row = next(r for r in rows() if r.id == "VL0001")
    t = with_row_media(Traffic(input_len=int(row.input_len), output_len=int(row.output_len)), row.notes)
    assert (t.images, t.image_width_px, t.image_height_px) == (1, 1920, 1080)
    v = load_model(row.model).vision
    assert abs(v.llm_tokens(t.image_height_px, t.image_width_px) - 344704 / 128) <= 2
    # a row without media is returned as is
    assert with_row_media(t.model_copy(update={"images": 0}), "no media here").images == 0


def test_counting_the_image_changes_the_prediction_the_right_way():
    # 288 text tokens + 2,691 image tokens per request: prefill ~10x the text-only one, so the closed
    # loop of 64 clients delivers far fewer output tokens/s than if the image were ignored.
    row = next(r for r in rows() if r.id == "VL0001")
    with_img, _ = predict_row(row)
    without, _ = predict_row(row.model_copy(update={"notes": row.notes.replace("images=1 image=1920x1080; ", "")}))
    assert with_img < without / 3
    assert abs(with_img / row.value - 1) < 0.25  # measured 533.5 tok/s
