"""`runs`, `show`, `logs`, `gc` and `cancel` of stopped runs, through the real CLI."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import Result, command, environment, step_started, wait_for

Cli = Callable[..., Result]
Write = Callable[..., Path]

MAPPED = """\
version: 1
name: mapped
inputs:
  fail: {type: boolean, default: false}
steps:
  - id: hello
    run: echo hello
  - id: each
    map:
      items: [1, 2]
      steps:
        - id: shout
          run: echo "item {{ item }}"
  - id: boom
    if: inputs.fail
    fail: "went wrong with {{ steps.hello.output }}"
"""


@pytest.fixture
def two_runs(cli: Cli, workflow: Write) -> tuple[str, str]:
    """A succeeded run and a newer failed one, as (succeeded id, failed id)."""
    workflow(MAPPED)
    good = cli("run", "flow.yaml", "--json", "-q")
    bad = cli("run", "flow.yaml", "-i", "fail=true", "--json", "-q")
    assert (good.code, bad.code) == (0, 1)
    return good.json()["run_id"], bad.json()["run_id"]


@dataclass(frozen=True)
class Shared:
    """Two runs made once for the tests that only read them, in a store of their own."""

    folder: Path
    state: str
    good: str
    bad: str

    def cli(self, *args: str) -> Result:
        done = subprocess.run(
            command(*args, "--state-dir", self.state),
            cwd=self.folder,
            env=environment(),
            capture_output=True,
            text=True,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    folder = tmp_path_factory.mktemp("shared")
    (folder / "flow.yaml").write_text(MAPPED, encoding="utf-8")
    runs = Shared(folder, str(folder / "state"), "", "")
    good = runs.cli("run", "flow.yaml", "--json", "-q")
    bad = runs.cli("run", "flow.yaml", "-i", "fail=true", "--json", "-q")
    assert (good.code, bad.code) == (0, 1)
    return Shared(folder, runs.state, good.json()["run_id"], bad.json()["run_id"])


def test_runs_lists_newest_first_as_table_and_json(shared: Shared) -> None:
    good, bad = shared.good, shared.bad
    table = shared.cli("runs")
    assert table.code == 0
    header, first, second = table.stdout.splitlines()
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert first.split()[:3] == [bad, "mapped", "failed"]
    assert second.split()[:3] == [good, "mapped", "succeeded"]
    listed = shared.cli("runs", "--json").json()
    assert [meta["id"] for meta in listed] == [bad, good]
    assert [meta["id"] for meta in shared.cli("runs", "--json", "--status", "succeeded").json()] == [good]
    assert [meta["id"] for meta in shared.cli("runs", "--json", "--limit", "1").json()] == [bad]
    none = shared.cli("runs", "--limit", "0")  # not "no runs in …" when there are runs
    assert none.code == 2 and "0 is not in the range x>=1" in none.stderr


def test_show_draws_the_node_tree_with_previews(shared: Shared) -> None:
    bad = shared.bad
    # A unique prefix: the two runs may share the date, the second and even letters of the random part.
    prefix = next(bad[:length] for length in range(16, len(bad) + 1) if not shared.good.startswith(bad[:length]))
    shown = shared.cli("show", prefix)
    assert shown.code == 0, shown.stderr
    head, tree = shown.stdout.split("\n\n")
    assert head.splitlines()[0] == f"run {bad}  mapped (flow.yaml)"
    assert "status:   failed" in head
    assert 'inputs:   {"fail": true}' in head
    assert "error:    went wrong with hello (step boom)" in head
    ruler, *rows = tree.splitlines()
    assert ruler.split() == ["0s", re.search(r"duration: (\S+)", head).group(1)]  # type: ignore[union-attr]
    assert all(re.search(r"│ *[█░·]+ *│", row) for row in rows), "every instance has a timeline bar"
    lines = [re.sub(r"\d+\.\d\ds", "T", re.sub(r" *│[ █░·]*│", "", row)) for row in rows]
    assert lines == [
        "✓ hello  T  → hello",
        '✓ each  T  → ["item 1", "item 2"]',
        "  ✓ [0]",
        "    ✓ shout  T  → item 1",
        "  ✓ [1]",
        "    ✓ shout  T  → item 2",
        "✗ boom  T  error: went wrong with hello",
    ]


def test_show_header_duration_is_the_rulers_even_when_events_outlast_the_stored_end(
    cli: Cli, two_runs: tuple[str, str], runs_dir: Path
) -> None:
    """The run's end is stored to the millisecond and events to the microsecond, so the last event can fall
    after it: the header's duration still equals the length of the ruler under it."""
    from llmflow.store.ids import format_timestamp, parse_timestamp

    good, _ = two_runs
    meta_path = runs_dir / good / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    started = parse_timestamp(meta["started"])
    assert started is not None
    meta["ended"] = format_timestamp(started)  # the stored end now precedes every event
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    shown = cli("show", good)
    assert shown.code == 0, shown.stderr
    head, tree = shown.stdout.split("\n\n")
    duration = re.search(r"duration: (\S+)", head)
    assert duration is not None
    assert tree.splitlines()[0].split() == ["0s", duration.group(1)]
    assert duration.group(1) != "0.00s"


def test_show_and_report_name_the_failed_step_once(cli: Cli, workflow: Write, tmp_path: Path) -> None:
    workflow("version: 1\nname: x\nsteps:\n  - id: fetch\n    run: exit 3\n")
    assert cli("run", "flow.yaml", "-q").code == 1
    head = cli("show", "--last").stdout.split("\n\n")[0]
    assert "error:    step 'fetch': command failed with exit code 3\n" in head + "\n"
    assert cli("report", "--last", "-o", "page.html").code == 0
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "step &#x27;fetch&#x27;: command failed with exit code 3</span>" in page


def test_show_calls_a_running_run_whose_process_is_gone_interrupted_as_runs_does(
    cli: Cli, two_runs: tuple[str, str], runs_dir: Path
) -> None:
    # What `kill -9` of the driver leaves: run.json still says running, and nobody holds the lock.
    run_json = runs_dir / two_runs[1] / "run.json"
    meta = json.loads(run_json.read_text(encoding="utf-8"))
    meta.update(status="running", ended=None)
    run_json.write_text(json.dumps(meta), encoding="utf-8")
    assert cli("runs", "--json").json()[0]["status"] == "interrupted"
    assert "status:   interrupted\n" in cli("show", two_runs[1]).stdout
    shown = cli("show", two_runs[1], "--json").json()["run"]
    assert (shown["status"], shown["stale"]) == ("interrupted", True)


def test_show_and_report_do_not_leave_the_steps_of_a_killed_run_running(
    cli: Cli, workflow: Write, runs_dir: Path, tmp_path: Path
) -> None:
    workflow("version: 1\nname: x\nsteps:\n  - id: g\n    steps:\n      - {id: slow, run: sleep 60}\n")
    driver = subprocess.Popen(command("run", "flow.yaml", "-q"), cwd=tmp_path, env=environment())
    try:
        wait_for(step_started(runs_dir, "g/slow"), "the step to start")
    finally:
        driver.kill()  # SIGKILL: the run's last events say the step started, and nothing more
        driver.wait()
    shown = cli("show", "--last", "--json").json()
    statuses = {node["path"]: node["status"] for node in shown["nodes"]}
    assert (shown["run"]["status"], statuses) == ("interrupted", {"g": "cancelled", "g/slow": "cancelled"})
    assert "running" not in cli("show", "--last").stdout
    assert cli("report", "--last", "-o", "page.html").code == 0
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert 'class="step st-cancelled"' in page and 'class="step st-running"' not in page


def test_show_json_has_the_run_and_its_nodes(shared: Shared) -> None:
    good = shared.good
    document = shared.cli("show", good, "--json").json()
    assert document["run"]["id"] == good and document["run"]["status"] == "succeeded"
    by_path = {node["path"]: node for node in document["nodes"]}
    assert set(by_path) == {"hello", "each", "each[0]/shout", "each[1]/shout", "boom"}
    assert by_path["each[1]/shout"]["output"] == "item 2"
    assert by_path["boom"]["status"] == "skipped"


def test_show_folds_the_items_of_a_big_map_into_one_row(cli: Cli, workflow: Write) -> None:
    workflow(
        """\
version: 1
name: wide
steps:
  - id: each
    map:
      items: "{{ range(100) | list }}"
      fail_fast: false
      tolerated_failures: 100%
      concurrency: 1
      steps:
        - id: check
          fail: "bad {{ item }}"
          if: item % 25 == 24
"""
    )
    run = cli("run", "flow.yaml", "--json", "-q")
    assert run.code == 0, run.stderr
    shown = cli("show", run.json()["run_id"])
    assert shown.code == 0, shown.stderr
    items = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("  ") and "[" in line]
    # The first 20 items, then the four that failed, then one row for the other 76.
    assert items == [f"[{index}]" for index in [*range(20), 24, 49, 74, 99]] + ["[…]"]
    assert shown.stdout.rstrip().endswith("76 more items: 76 skipped")  # the other items skip `check`
    listed = cli("show", run.json()["run_id"], "--json").json()["nodes"]
    assert len(listed) == 1 + 100  # the JSON keeps every instance


def test_logs_prints_events_readably_and_raw(shared: Shared) -> None:
    good = shared.good
    readable = shared.cli("logs", good).stdout.splitlines()
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}  run\.started +-  ", readable[0])
    assert any(re.search(r"step\.completed +each\[0\]/shout  \S+ → item 1$", line) for line in readable)
    assert readable[-1].endswith("run.completed   -  succeeded")
    raw = [json.loads(line) for line in shared.cli("logs", good, "--json").stdout.splitlines()]
    assert len(raw) == len(readable) and raw[-1]["type"] == "run.completed"


def test_logs_says_which_event_lines_are_damaged_instead_of_leaving_them_out(
    cli: Cli, two_runs: tuple[str, str], runs_dir: Path
) -> None:
    good, _ = two_runs
    events = runs_dir / good / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    lines[1:1] = [b'{"v":1,"seq":2,"ty\n', b"[1, 2]\n", b'"\x1b[2J"\n']
    events.write_bytes(b"".join(lines))
    readable = cli("logs", good).stdout.splitlines()
    assert readable[1:4] == [
        'events.jsonl:2: not an event: {"v":1,"seq":2,"ty',
        "events.jsonl:3: not an event: [1, 2]",
        'events.jsonl:4: not an event: "\\x1b[2J"',
    ]
    assert readable[0].split()[1] == "run.started" and readable[-1].endswith("run.completed   -  succeeded")
    assert len(readable) == len(lines)
    raw = cli("logs", good, "--json")
    assert [json.loads(line)["seq"] for line in raw.stdout.splitlines()] == list(range(1, len(lines) - 2))
    assert raw.stderr.splitlines() == readable[1:4]


def test_cancel_marks_a_stopped_run_and_refuses_a_succeeded_one(cli: Cli, two_runs: tuple[str, str]) -> None:
    good, bad = two_runs
    cancelled = cli("cancel", bad)
    assert (cancelled.code, cancelled.stderr) == (0, f"cancelled run {bad} (was failed)\n")
    assert cli("show", bad, "--json").json()["run"]["status"] == "cancelled"
    events = [json.loads(line) for line in cli("logs", bad, "--json").stdout.splitlines()]
    assert events[-1]["type"] == "run.cancelled" and events[-1]["seq"] == events[-2]["seq"] + 1
    assert cli("cancel", bad).stderr == f"run {bad} is already cancelled\n"
    refused = cli("cancel", good)
    assert (refused.code, refused.stderr) == (2, f"error: run {good} already succeeded; there is nothing to cancel\n")


def test_gc_removes_old_runs_and_dry_run_only_lists(cli: Cli, two_runs: tuple[str, str], runs_dir: Path) -> None:
    good, bad = two_runs
    kept = cli("gc", "--older-than", "1h")
    assert (kept.code, kept.stdout, kept.stderr) == (0, "", "removed 0 runs older than 1h\n")
    listed = cli("gc", "--older-than", "0s", "--dry-run")
    assert listed.stdout.splitlines() == [
        f"would remove {bad}  mapped  failed",
        f"would remove {good}  mapped  succeeded",
    ]
    assert sorted(path.name for path in runs_dir.iterdir()) == sorted([good, bad])
    removed = cli("gc", "--older-than", "0s")
    assert removed.code == 0 and removed.stderr == "removed 2 runs older than 0s\n"
    assert cli("runs", "--json").json() == []


@pytest.mark.parametrize("age", ["30", "0", "1e400", " 7 ", "-0", "2.5"])
def test_gc_older_than_without_a_unit_is_refused_and_removes_nothing(
    cli: Cli, two_runs: tuple[str, str], runs_dir: Path, age: str
) -> None:
    result = cli("gc", "--older-than", age)
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == f"error: --older-than: {age!r} has no unit (say 30d, 12h, 45m or 90s)\n"
    assert sorted(path.name for path in runs_dir.iterdir()) == sorted(two_runs)


@pytest.mark.parametrize("age", ["-1d", "30 days", "soon"])
def test_gc_older_than_that_is_no_age_is_refused_without_offering_bare_seconds(
    cli: Cli, two_runs: tuple[str, str], runs_dir: Path, age: str
) -> None:
    result = cli("gc", "--older-than", age)
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == f"error: --older-than: {age!r} is not an age (say 30d, 12h, 45m, 90s or 1d12h)\n"
    assert sorted(path.name for path in runs_dir.iterdir()) == sorted(two_runs)


def test_show_without_runs_is_a_one_line_error(cli: Cli) -> None:
    result = cli("show", "--last")
    assert result.code == 2
    assert result.stderr.startswith("error: no runs in ")


#: Holds the flock of the lock file argv[1] with argv[2] as its text, as a driver would, until stdin closes.
FAKE_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, sys.argv[2].encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_cancel_never_signals_a_process_group_a_damaged_lock_file_names(
    two_runs: tuple[str, str], runs_dir: Path
) -> None:
    _, bad = two_runs
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FAKE_HOLDER,
            str(runs_dir / bad / "lock"),
            json.dumps({"pid": 0, "host": socket.gethostname()}),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        # A session of its own: were pid 0 signalled, only the cancel command itself would be hit, not the tests.
        done = subprocess.run(
            command("cancel", bad), env=environment(), capture_output=True, text=True, start_new_session=True
        )
        assert (done.returncode, done.stderr) == (
            2,
            f"error: run {bad} is locked, but its lock file names no process to stop (pid 0)\n",
        )
        assert holder.poll() is None
    finally:
        holder.communicate("")
    assert json.loads((runs_dir / bad / "run.json").read_text(encoding="utf-8"))["status"] == "failed"


#: The CLI as ``python -m llmflow`` runs it, with a real Ctrl-C (SIGINT) arriving while typer is imported, the
#: slowest part of a command's start (state, not a guessed delay, chooses the moment).
INTERRUPTED_START = """
import os, signal, sys

class InterruptTyperImport:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptTyperImport())
sys.argv[0] = "llmflow"
from llmflow.cli import main
main()
"""


@pytest.mark.parametrize("args", [("logs", "--last", "--follow"), ("runs",)])
def test_ctrl_c_while_a_command_starts_exits_130_without_a_traceback(args: tuple[str, ...], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_START, *args],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")
