"""The UI in a real headless Chromium: runs → run → cases → a flip filter → a case, two runs
compared, a run started with the fake generator and watched to the end, the playground; with
no network, no console error, and nothing requested from outside the UI's own address.

`COMPOUNDAI_UI_SCREENSHOTS=docs/ui` writes the README's screenshots from this run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from tests.conftest import ROOT
from tests.evaluators.browser import find_chromium
from tests.ui import fakes
from tests.ui.browser import Browser

pytest.importorskip("fastapi", reason="the UI needs the serve extra")
pytest.importorskip("websockets", reason="the DevTools client needs `websockets`")


def _shot(browser: Browser, name: str) -> None:
    browser.screenshot()  # always exercised; kept only when asked
    if folder := os.environ.get("COMPOUNDAI_UI_SCREENSHOTS"):
        browser.screenshot(Path(folder) / f"{name}.png")


def test_click_through_the_ui_in_chromium(ui_runs, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from compoundai.serve import serve_in_thread
    from compoundai.ui.app import UISettings, create_ui_app

    ctx = RunContext(cache_dir=ui_runs.cache, progress=False)
    ctx.clients.update(generator=fakes.generator(), embedder=HashEmbedder())
    settings = UISettings(
        allowed_hosts=["127.0.0.1"],
        runs_dir=tmp_path,  # the run started below lands here, not among the shared runs
        context_factory="tests.ui.fakes:fake_context",
        base_dir=ROOT,
    )
    app = create_ui_app([*ui_runs.dirs, tmp_path], settings, ctx)
    with serve_in_thread(app) as api_url, Browser(chromium) as b:
        base = api_url.removesuffix("/v1")

        # runs: every readable run listed, the broken one and the missing folder said so
        b.goto(base + "/")
        tasks = b.eval(
            "[...document.querySelectorAll('#runs tbody tr')].map(r => r.cells[0].textContent)"
        )
        assert sorted(tasks) == ["banking77-intents"] * 3 + ["squad-docs-qa"]
        assert "not-there does not exist" in b.text("main")
        assert "not JSON" in b.text("#broken-runs") or "not a compoundai report" in b.text(
            "#broken-runs"
        )
        b.click("#runs th:nth-child(1)", navigates=False)  # sortable: by task
        b.type("input.filter", "squad")
        visible = b.eval(
            "[...document.querySelectorAll('#runs tbody tr')].filter(r => !r.hidden).length"
        )
        assert visible == 1
        b.type("input.filter", "")
        b.eval("document.querySelector('input.filter').dispatchEvent(new Event('input'))")
        _shot(b, "runs")

        # a run: lanes with intervals and cost, plots, the decision, the release gate
        b.click('a.run-link[href="/run?id=0%2Fbanking-a"]')
        assert b.text("h1") == "banking77-intents"
        assert b.count("#lanes tbody tr") == 4
        assert "[" in b.text("#lanes tbody tr td:nth-child(3)")  # value [ci_low, ci_high]
        assert b.count(".plots svg.chart") >= 3
        assert b.count("#reasons tbody tr") >= 1
        assert b.text("#decision-mode") in ("rules", "rules + probe", "measured")
        assert "Release gate" in b.text("#release-gate")
        _shot(b, "run")

        # cases, then the flip filter: lane A right where lane B is wrong
        b.click("#open-cases")
        assert b.count("#cases tbody tr") == 20
        summary = b.text("#flip-summary")
        a_wins = int(re.search(r"scores higher on (\d+) cases", summary).group(1))
        assert "differs" not in summary and "the report counts" in summary
        b.choose("#pick-show", "a_better")
        b.click("#apply-filters")
        assert "show=a_better" in b.eval("location.search")
        assert b.count("#cases tbody tr") == a_wins > 0
        picked_a = b.eval("document.querySelector('#pick-a').value")
        picked_b = b.eval("document.querySelector('#pick-b').value")
        column = b.eval(
            "[...document.querySelectorAll('#cases thead th')].map(h => h.textContent)"
        ).index(f"{picked_a} (A)")
        column_b = b.eval(
            "[...document.querySelectorAll('#cases thead th')].map(h => h.textContent)"
        ).index(f"{picked_b} (B)")
        marks = b.eval(
            f"""[...document.querySelectorAll('#cases tbody tr')].map(r =>
              [r.cells[{column}].querySelector('.score').textContent,
               r.cells[{column_b}].querySelector('.score').textContent])"""
        )
        assert all(m == ["✓", "✗"] for m in marks), marks
        _shot(b, "cases")

        # one case: every lane's answer side by side with the gold answer
        b.click("a.case-link")
        assert b.count("section.answer") == 4
        assert b.text("#case-gold").strip()
        first = b.eval("document.querySelector('section.answer').dataset.lane")
        assert first == picked_a

        # a rag case of the docs-QA run: passages and citations, and an abstention
        b.goto(base + "/cases?run=0%2Fsquad&show=abstained")
        assert b.count("#cases tbody tr") > 0 and b.count("#cases .badge.unk") > 0
        b.goto(base + "/cases?run=0%2Fsquad")
        cited = b.eval(
            r"""(() => { const rows = [...document.querySelectorAll('#cases tbody tr')];
               const i = [...document.querySelectorAll('#cases thead th')]
                 .findIndex(h => h.textContent.replace(/ \(.\)$/, '') === 'rag');
               const row = rows.find(r => !r.cells[i].querySelector('.badge.unk'));
               return row.querySelector('a.case-link').getAttribute('href'); })()"""
        )
        b.goto(base + cited)
        rag = 'section.answer[data-lane="rag"]'
        assert b.count(f"{rag} li.passage") == 5
        assert "cites" in b.text(f"{rag} .citations")
        _shot(b, "case")

        # two runs of the same task: what changed, which cases flipped
        b.goto(base + "/compare")
        b.choose("#pick-a", "0/banking-a")
        b.choose("#pick-b", "0/banking-b")
        b.click("#compare-form button")
        assert b.count("#lane-deltas tbody tr") == 4
        assert "generator" not in b.text("#changes")  # same fake name: only the answers differ
        assert b.count("h3.flip-lane") == 4
        assert any(" 0 cases changed" not in h for h in b.eval(
            "[...document.querySelectorAll('h3.flip-lane')].map(h => h.textContent)"))  # fmt: skip
        _shot(b, "compare")

        # start a run from a task file, watch its progress, open it when it is done
        b.goto(base + "/start")
        b.type("#task-file", "examples/banking77/task.yaml")
        b.click('input[name=lanes][value="rag"]', navigates=False)  # prompt only: seconds
        b.type("#limit", "10")
        b.click("#start")
        assert "/jobs/" in b.eval("location.pathname")
        b.wait_until("document.querySelector('#job').dataset.state === 'finished'", timeout=180)
        lines = b.text("#progress")
        assert "building prompt/zero-shot" in lines and "done: winner" in lines
        assert "compare lanes" in lines  # the tqdm bar, as the CLI draws it
        assert b.text("#job-state") == "finished"
        _shot(b, "job")
        b.click("#job-run-link")
        assert b.text("h1") == "banking77-intents" and b.count("#lanes tbody tr") == 2
        b.goto(base + "/")
        assert b.count("#runs tbody tr") == 5

        # the playground: an answer, its prompt and the passages it retrieved
        b.goto(base + "/play")
        b.type("#play-input", "Who was the duke in the battle of Hastings?")
        b.click("#play", navigates=False)
        b.wait_until("!document.querySelector('#play-result').hidden")
        assert b.text("#play-answer").strip()
        assert b.count("#play-prompt .chat-turn") >= 2
        assert "Hastings" in b.text("#play-prompt")
        assert b.count("#play-passages li.passage") == 5
        _shot(b, "playground")

        assert b.errors == []
        outside = [u for u in b.requests if not u.startswith((base, "data:"))]
        assert outside == [], outside
        shown = json.dumps(b.requests)
        assert "/static/ui.js" in shown and "/static/ui.css" in shown
