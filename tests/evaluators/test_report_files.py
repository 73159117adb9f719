"""The report files: JSON per DESIGN.md, Markdown and HTML rendered again from a saved JSON,
and the HTML checked in a real headless Chromium (console errors, plots, a screenshot)."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai_evaluators import load_report, render_html, render_markdown, write_reports
from tests.evaluators.browser import find_chromium, load_page


def test_report_json_follows_the_design_contract(scripted_report, tmp_path):
    write_reports(scripted_report, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert {"task", "decision", "lanes", "winner", "router_correct"} <= set(data)
    assert {"plan", "ranked", "reasons"} <= set(data["decision"])
    for lane in data["lanes"]:
        assert {"name", "metrics", "latency_ms", "cost"} <= set(lane)
        for m in lane["metrics"].values():
            assert m["ci_low"] <= m["value"] <= m["ci_high"]
        assert set(lane["latency_ms"]) == {"p50", "p95"}
    assert data["winner"] == "finetune" and data["router_correct"] is True
    assert data["verdict"]["release"] and data["comparisons"]


def test_markdown_and_html_render_again_from_a_saved_report(scripted_report, tmp_path):
    write_reports(scripted_report, tmp_path)
    again = load_report(tmp_path)
    assert again == scripted_report
    html = (tmp_path / "report.html").read_text()
    assert (
        render_html(again) == html
        and render_markdown(again) == (tmp_path / "report.md").read_text()
    )
    assert "<script" not in html
    # self-contained: the only URL is the SVG namespace, nothing is fetched
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert html.count("<svg") >= 5
    md = (tmp_path / "report.md").read_text()
    for heading in ("## Verdict", "### Release gate", "## Lane vs lane", "## Assumptions"):
        assert heading in md
    assert "finetune**: ships" in md and "compound**: does not ship" in md


def test_cli_report_renders_from_report_json(scripted_report, tmp_path):
    (tmp_path / "report.json").write_text(scripted_report.model_dump_json())
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    bad = CliRunner().invoke(cli, ["report", str(tmp_path / "cache")])
    assert bad.exit_code == 2


def test_cli_report_on_a_broken_json_is_a_user_error(tmp_path):
    (tmp_path / "report.json").write_text('{"task": 1}')
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "cannot read" in result.output


CHART_FACTS = """(() => {
  const charts = [...document.querySelectorAll('figure.plot svg.chart')];
  return {
    charts: charts.length,
    ids: [...document.querySelectorAll('figure.plot')].map(f => f.id),
    visible: charts.every(s => s.getBoundingClientRect().width > 300),
    marks: document.querySelectorAll('svg rect, svg circle').length,
    whiskers: document.querySelectorAll('svg .whisker').length,
    title: document.title,
  };
})()"""


def test_report_html_in_headless_chromium(scripted_report, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("websockets", reason="the DevTools client needs `websockets`")
    write_reports(scripted_report, tmp_path)
    page = load_page(chromium, tmp_path / "report.html", CHART_FACTS)
    assert page.errors == []
    facts = page.value
    assert facts["title"] == "compoundai report: scripted-intents"
    assert facts["charts"] >= 5 and facts["visible"]
    assert {"plot-metric-0", "plot-differences", "plot-cost", "plot-latency"} <= set(facts["ids"])
    assert facts["whiskers"] >= 5 and facts["marks"] >= 15
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 50_000
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    if artifacts := os.environ.get("COMPOUNDAI_TEST_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "report.png")


def test_the_browser_check_does_catch_errors(tmp_path):
    """Guard the guard: a page with a script error, a console error and a remote image fails."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("websockets", reason="the DevTools client needs `websockets`")
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    page = load_page(chromium, bad, "1 + 1")
    assert page.value == 2
    kinds = {e.split(":")[0] for e in page.errors}
    assert {"console", "exception"} <= kinds, page.errors
