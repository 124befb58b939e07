"""Operators users define (docs/operators.md): formulas, Python functions, files, config sections."""

import json

import numpy as np
import pytest

from tokenfab.graph import StepShape, step_ops
from tokenfab.graph import plugins
from tokenfab.graph.ops import Op
from tokenfab.specs import ModelSpec, SpecError

INDEXER = {"name": "topk_indexer", "kind": "compute", "count": "num_layers",
           "flops": "2 * tokens * kv_len * heads * dim", "bytes": "seqs * kv_len * (dim + 4)",
           "params": {"heads": 2, "dim": 8}}


@pytest.fixture(autouse=True)
def clean():
    plugins.clear_operators()
    yield
    plugins.clear_operators()


def decode(T=2, kv=10):
    one = np.ones(1)
    return StepShape("decode", tokens=T * one, seqs=T * one, ctx=kv * one, kv_len=kv * one, tp=one, dp=one, ep=one,
                     w_bytes=2 * one, a_bytes=2.0, kv_bytes=2 * one)


def by_name(model, s):
    return {op.name: op for op in step_ops(model, s)}


def test_formula_operator_joins_every_step(tiny_model):
    plugins.add_operator(INDEXER)
    op = by_name(tiny_model, decode())["topk_indexer"]
    # 2 tokens x 10 keys x 2 heads x 8 dims x 2 = 640 FLOPs; 2 seqs x 10 keys x 12 B = 240 B.
    assert float(op.flops[0]) == 640 and float(op.bytes[0]) == 240
    assert op.count == 2 and op.kind == "fused"


def test_replaces_and_filters(tiny_model):
    plugins.add_operator(dict(INDEXER, replaces=["attention"], families=["llama"], phases=["decode"]))
    ops = by_name(tiny_model, decode())
    assert "attention" not in ops and "topk_indexer" in ops
    plugins.add_operator(dict(INDEXER, families=["qwen3"]))  # replaces the first (same name)
    assert "topk_indexer" not in by_name(tiny_model, decode())


def test_python_function_operator(tiny_model):
    @plugins.register_operator("custom", phases=("decode",))
    def custom(model, s):
        return {"flops": 3.0 * s.tokens * model.hidden_size, "bytes": 0.0, "count": 1}

    assert float(by_name(tiny_model, decode())["custom"].flops[0]) == 3 * 2 * 64

    @plugins.register_operator("as_ops")
    def as_ops(model, s):
        return [Op("my_gemm", "gemm", 1, m=s.tokens, n=8, k=8, w_bytes=2.0)]

    assert float(by_name(tiny_model, decode())["my_gemm"].flops[0]) == 2 * 2 * 8 * 8


def test_bad_formulas_fail_with_the_name(tiny_model):
    plugins.add_operator(dict(INDEXER, flops="2 * nonsense"))
    with pytest.raises(SpecError, match="unknown name 'nonsense'"):
        step_ops(tiny_model, decode())
    plugins.clear_operators()
    plugins.add_operator(dict(INDEXER, flops="__import__('os')"))
    with pytest.raises(SpecError, match="not allowed"):
        step_ops(tiny_model, decode())


def test_yaml_file_and_config_section(tmp_path, tiny_model):
    f = tmp_path / "ops.yaml"
    f.write_text("operators:\n  - name: topk_indexer\n    flops: 2 * tokens * kv_len * 16\n")
    plugins.load_operators(f)
    assert float(by_name(tiny_model, decode())["topk_indexer"].flops[0]) == 2 * 2 * 10 * 16
    plugins.clear_operators()
    cfg = json.loads((tmp_path.parent / "x.json").read_text()) if False else {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 100, "_tokenfab": {"operators": [INDEXER]}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    model = ModelSpec.from_config_file(path)
    assert float(by_name(model, decode())["topk_indexer"].flops[0]) == 640


def test_operator_flows_through_estimate():
    from tokenfab import api
    from tokenfab.specs import Traffic
    t = Traffic(input_len=1024, output_len=128)
    base = api.estimate("llama-3.1-8b", "h100-sxm", t, num_chips=1, batch=8, precision="bf16")
    plugins.add_operator(dict(INDEXER, flops="2 * tokens * kv_len * 64 * 128 * 100"))
    more = api.estimate("llama-3.1-8b", "h100-sxm", t, num_chips=1, batch=8, precision="bf16")
    assert "topk_indexer" in more.time_breakdown_ms["decode"]
    assert more.decode_step_ms > base.decode_step_ms


def test_the_environment_is_read_at_the_edge_not_by_the_engine(tmp_path, monkeypatch):
    # issue 15 item 12: the graph never reads $TOKENFAB_OPERATORS; `load_env_operators` (called by
    # tokenfab.api on import) registers its files, and a bad path there is one line, exit 2.
    from tokenfab.graph import plugins
    (tmp_path / "op.yaml").write_text("operators:\n  - name: env_op\n    kind: stream\n    phases: [decode]\n"
                                      "    bytes: '1e6'\n")
    monkeypatch.setenv("TOKENFAB_OPERATORS", str(tmp_path / "op.yaml"))
    assert "env_op" not in [s.name for s in plugins.registered_operators()]  # set after import: not seen
    try:
        assert [s.name for s in plugins.load_env_operators()] == ["env_op"]
        assert "env_op" in [s.name for s in plugins.registered_operators()]
    finally:
        plugins.unregister_operator("env_op")
    import inspect
    assert "environ" not in inspect.getsource(plugins.apply_operators)


def test_a_bad_operator_file_in_the_environment_is_one_line(monkeypatch):
    from typer.testing import CliRunner

    from tokenfab import api
    from tokenfab.cli import app
    monkeypatch.setenv("TOKENFAB_OPERATORS", "/no/such/operators.yaml")
    monkeypatch.setattr(api, "_ENV_OPERATORS", [])
    r = CliRunner().invoke(app, ["estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm"])
    assert r.exit_code == 2 and r.stderr.strip().startswith("error: ") and "operators.yaml" in r.stderr
