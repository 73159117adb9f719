"""`run_task` / `compoundai compare` write all report files; re-runs come from the cache."""

import doctest
import importlib
import json
import pkgutil

import pytest
from click.testing import CliRunner

import compoundai_evaluators
from compoundai.cli import cli
from compoundai.run import run_task
from compoundai.task import load_task
from tests.conftest import BANKING, label_echo_generator


def test_run_writes_every_report_file_and_reruns_from_the_cache(fake_ctx, tmp_path):
    task = load_task(BANKING)
    gen = label_echo_generator(task.labels)
    fake_ctx.clients["generator"] = gen
    out = tmp_path / "out"
    first = run_task(task, out, lanes=["prompt"], limit=40, ctx=fake_ctx, mode="rules")
    for name in ("report.json", "report.md", "report.html", "predictions.jsonl"):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    assert data["verdict"]["overall"] == data["winner"] == first.winner
    assert data["comparisons"][0]["metric"] in {"accuracy", "macro_f1"}
    assert data["prices"]["compute_usd_per_hour"] == 0.10
    assert data["constraints"]["max_latency_ms"] == 2000
    calls = len(gen.calls)
    second = run_task(task, out, lanes=["prompt"], limit=40, ctx=fake_ctx, mode="rules")
    assert len(gen.calls) == calls  # nothing generated again
    assert [lane.cached for lane in second.lanes] == [40, 40]
    assert second.lanes[0].metrics == first.lanes[0].metrics
    run_task(task, out, lanes=["prompt"], limit=40, ctx=fake_ctx, cache=False, mode="rules")
    assert len(gen.calls) == 2 * calls


def test_cli_compare_rejects_a_bad_price_table_before_any_work(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  gpt-4o: {input_per_mtok: -1}\ncurrency: EUR\n")
    result = CliRunner().invoke(
        cli, ["compare", str(BANKING), "-o", str(tmp_path / "o"), "--prices", str(prices)]
    )
    assert result.exit_code == 2, result.output
    assert "prices.yaml" in result.output and "currency" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_compare_help_keeps_the_design_flags():
    result = CliRunner().invoke(cli, ["compare", "--help"])
    for flag in ("-o, --out", "--lanes", "--limit", "--no-cache", "--prices", "--judge-model"):
        assert flag in result.output


@pytest.mark.parametrize(
    "module",
    [
        m.name
        for m in pkgutil.walk_packages(compoundai_evaluators.__path__, "compoundai_evaluators.")
    ],
)
def test_documented_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_readme_price_table_loads(tmp_path):
    from compoundai_evaluators import load_prices
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\ncompute_usd_per_hour")[1].split("```")[0]
    path = tmp_path / "prices.yaml"
    path.write_text("compute_usd_per_hour" + block)
    table = load_prices(path)
    assert table.price_of("gpt-4o-mini-2024").output_per_mtok == 0.60
