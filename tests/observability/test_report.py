"""``llmflow report``: one self-contained HTML page, escaped throughout, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from observability_helpers import Project

import llmflow

#: Every value a run shows that an attacker may control carries a script that would leave a mark if it ran.
WORKFLOW = """
inputs:
  note:
    type: string
    default: "<img src=x onerror=\\"document.title='pwned-input'\\">"
steps:
  - id: fetch
    name: "<b>Fetch</b><script>document.title='pwned-name'</script>"
    run: echo '["a", "b"]'
    parse: json
  - id: label
    map:
      items: "{{ steps.fetch.output }}"
      steps:
        - id: classify
          llm:
            model: mock/echo
            prompt: "label {{ item }}"
  - id: reviews
    parallel:
      branches:
        style:
          - id: style_check
            run: echo fine
        security:
          - id: security_check
            fail: "</pre><script>document.title='pwned-error'</script>"
            continue_on_error: true
  - id: evil
    set:
      payload: >-
        <script>document.title='pwned';
        document.body.insertAdjacentHTML('beforeend','<p id=pwned-el>x</p>')</script>
  - id: echo_evil
    run: echo "<script>document.title='pwned-preview'</script>"
"""
STEP_IDS = ["fetch", "label", "classify", "reviews", "style_check", "security_check", "evil", "echo_evil"]


def cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmflow", *args, "--state-dir", str(project.state)]
    return subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)


@pytest.fixture
def report(project: Project) -> Path:
    """The report of a run of ``WORKFLOW``, written by the real CLI."""
    summary = project.run(project.workflow(WORKFLOW))
    assert summary.status == "succeeded", summary.error
    done = cli(project, "report", "--last", "-o", "report.html")
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote report.html (run {summary.run_id}, succeeded)\n"
    return project.root / "report.html"


def chromium() -> str:
    """The Chromium binary; a missing one fails the test (CI installs it), it is never skipped."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "chromium is not installed, and the report test renders the page in headless Chromium: "
        "install it (Debian/Ubuntu: apt-get install -y chromium); .ci/run does this when it can",
        pytrace=False,
    )


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM after Chromium loaded it (and ran whatever scripts it could)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--dump-dom",
    ]
    done = subprocess.run([chromium(), *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


def test_the_page_is_self_contained_and_escapes_everything(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page.lower(), "the page has no scripts, and no value can add one"
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;;" in page
    assert "&lt;img src=x onerror=" in page and "<img" not in page
    assert not re.search(r"""<[^>]*\b(?:src|href)\s*=\s*(?!["']?#)""", page), "nothing is loaded from anywhere"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for section in ('id="graph"', 'id="timeline"', 'id="steps"'):
        assert section in page


def test_chromium_renders_every_step_and_runs_no_injected_script(report: Path, tmp_path: Path) -> None:
    dom = rendered_dom(report, tmp_path / "profile")
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None and "pwned" not in title.group(1) and title.group(1).startswith("observed")
    assert 'id="pwned-el"' not in dom and "<p id=pwned-el>" not in dom
    assert "&lt;script&gt;document.title='pwned'" in dom  # shown as text, not run
    text = re.sub(r"<[^>]+>", " ", dom)
    for step_id in STEP_IDS:
        assert re.search(rf"\b{re.escape(step_id)}\b", text), f"{step_id} is not on the rendered page"
    for status in ("st-succeeded", "st-failed"):
        assert status in dom
    assert dom.count('class="gantt-row ') == 1 + len(re.findall(r'<details class="step ', dom))


def test_report_graph_nests_patterns_and_colours_nodes(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    graph = page[page.index('id="graph"') : page.index('id="timeline"')]
    reviews = graph[graph.index('data-path="reviews"') :]
    assert reviews.index('data-path="reviews/style/style_check"') < reviews.index('data-path="evil"')
    assert re.search(r'class="node leaf st-failed" data-path="reviews/security/security_check"', graph)
    assert re.search(r'class="node pattern st-succeeded" data-path="label"', graph)
    assert "2×" in graph  # label/classify ran once per item


def test_report_without_a_run_is_a_usage_error(project: Project) -> None:
    done = cli(project, "report")
    assert done.returncode == 2 and done.stderr == "error: give a run id (or a unique prefix of one), or --last\n"


def test_report_to_stdout(project: Project) -> None:
    summary = project.run(project.workflow("steps:\n  - {id: hello, run: echo hi}\n"))
    done = cli(project, "report", summary.run_id[:17], "-o", "-")
    assert done.returncode == 0 and done.stdout.startswith("<!DOCTYPE html>") and "hello" in done.stdout
    assert llmflow.__version__ in done.stdout


@pytest.mark.parametrize("to", ["report.html", "-"])
def test_a_lone_surrogate_in_an_output_is_written_escaped(project: Project, to: str) -> None:
    (project.root / "hostile.py").write_text("def reply():\n    return 'x\\ud800y'\n", encoding="utf-8")
    summary = project.run(project.workflow('steps:\n  - {id: odd, python: "hostile:reply"}\n'))
    done = cli(project, "report", summary.run_id, "-o", to)
    assert done.returncode == 0, done.stderr
    page = done.stdout if to == "-" else (project.root / to).read_text(encoding="utf-8")
    assert "x\\ud800y" in page and page.rstrip().endswith("</html>")


@pytest.mark.parametrize("to", ["report.html", "-"])
def test_terminal_controls_and_bidi_overrides_in_an_output_are_shown_escaped(project: Project, to: str) -> None:
    # Printed with -o -, the page would clear the screen and set the title; in a browser the override would
    # reorder the text after it.
    reply = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil"
    (project.root / "hostile.py").write_text(f"def reply():\n    return {reply!r}\n", encoding="utf-8")
    summary = project.run(project.workflow('steps:\n  - {id: odd, python: "hostile:reply"}\n'))
    done = cli(project, "report", summary.run_id, "-o", to)
    assert done.returncode == 0, done.stderr
    page = done.stdout if to == "-" else (project.root / to).read_text(encoding="utf-8")
    assert not any(character in page for character in "\x1b\x07\x9b\u202e")
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil" in page


def test_report_folds_the_items_of_a_big_map_and_still_counts_them_all(project: Project) -> None:
    summary = project.run(
        project.workflow(
            """\
steps:
  - id: each
    map:
      items: "{{ range(101) | list }}"
      fail_fast: false
      tolerated_failures: 100%
      concurrency: 1
      steps:
        - id: note
          set: {seen: 1}
        - id: check
          fail: "bad {{ item }}"
          if: item % 25 == 24
"""
        )
    )
    assert summary.status == "succeeded", summary.error
    done = cli(project, "report", summary.run_id, "-o", "report.html")
    assert done.returncode == 0, done.stderr
    page = (project.root / "report.html").read_text(encoding="utf-8")
    graph = page[page.index('id="graph"') : page.index('id="timeline"')]
    timeline = page[page.index('id="timeline"') : page.index('id="steps"')]
    steps = page[page.index('id="steps"') :]
    # The graph counts every instance, also those the folded row stands for.
    assert re.search(r'data-path="each/note">.*?<span class="tally">101×</span>', graph)
    assert re.search(r'data-path="each/check">.*?<span class="tally">101× 4 ✗ 97 –</span>', graph)
    # The timeline and the details keep the first 20 items and the four that failed, then one row for the rest.
    kept = [f"each[{index}]" for index in [*range(20), 24, 49, 74, 99]] + ["each[…]"]
    rows = re.findall(r'title="(each\[[^\]]*\])">', timeline)
    assert rows == kept
    assert re.findall(r"<summary>.*?<code>(each\[[^\]]*\])</code>", steps) == kept
    assert "[…] 77 more items: 77 succeeded</a>" in timeline
    assert '<span class="meta">77 more items: 77 succeeded</span>' in steps
    assert "each[20]" not in page and "each[100]" not in page
