"""Real crashes: ``llmflow run`` is killed with SIGKILL inside each pattern, then ``llmflow resume`` finishes it.

Every step appends ``<step-id> <instance>`` to a side-effect log before it does anything else. The step at
the kill point blocks until a gate file exists; the test waits until the log (and, where other work runs
beside it, the journal) shows the run has reached the kill point, then kills the whole process tree. The
resumed run must reach the outputs of an unbroken run of the same workflow in another folder, with every
side effect done exactly once per instance, except the steps that were in flight at the kill: those run
again (at-least-once), so they are logged exactly twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30.0
HEADER = """\
version: 1
name: {name}
inputs:
  log: {{type: string}}
  gate: {{type: string}}
"""
# Waits for the gate file: it never appears in the first run, so the step is in flight when the run is killed.
BLOCK = 'while [ ! -e "{{ inputs.gate }}" ]; do sleep 0.05; done'


def workflow(name: str, body: str) -> str:
    return HEADER.format(name=name) + body.replace("BLOCK", BLOCK)


SEQUENCE = workflow(
    "sequence",
    """
steps:
  - id: a
    run: echo "a -" >> "{{ inputs.log }}"; echo A
  - id: b
    run: echo "b -" >> "{{ inputs.log }}"; echo "{{ steps.a.output }}B"
  - id: c
    run: echo "c -" >> "{{ inputs.log }}"; BLOCK; echo "{{ steps.b.output }}C"
  - id: d
    run: echo "d -" >> "{{ inputs.log }}"; echo "{{ steps.c.output }}D"
outputs:
  b: "{{ steps.b.output }}"
  d: "{{ steps.d.output }}"
""",
)

LOOP = workflow(
    "loop",
    """
vars: {total: 0}
steps:
  - id: before
    run: echo "before -" >> "{{ inputs.log }}"; echo go
  - id: rounds
    loop:
      times: 5
      steps:
        - id: add
          set: {total: "{{ vars.total + loop.iteration }}"}
        - id: first
          run: echo "first {{ loop.iteration }}" >> "{{ inputs.log }}"; echo "{{ vars.total }}"
        - id: hold
          run: >-
            echo "hold {{ loop.iteration }}" >> "{{ inputs.log }}";
            if [ "{{ loop.iteration }}" = 3 ]; then BLOCK; fi;
            echo "{{ steps.first.output }}/{{ index }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ vars.total }}"
outputs:
  rounds: "{{ steps.rounds.output }}"
  total: "{{ steps.after.output }}"
""",
)

MAP = workflow(
    "map",
    """
steps:
  - id: items
    map:
      items: [1, 2, 3, 4, 5, 6]
      concurrency: 2
      steps:
        - id: double
          run: echo "double {{ item }}" >> "{{ inputs.log }}"; echo "{{ item * 2 }}"
        - id: hold
          run: >-
            echo "hold {{ item }}" >> "{{ inputs.log }}";
            case "{{ item }}" in 2|4) BLOCK;; esac;
            echo "{{ steps.double.output }}@{{ index }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.items.output | join(',') }}"
outputs:
  items: "{{ steps.items.output }}"
  after: "{{ steps.after.output }}"
""",
)

PARALLEL = workflow(
    "parallel",
    """
steps:
  - id: before
    run: echo "before -" >> "{{ inputs.log }}"; echo go
  - id: lanes
    parallel:
      branches:
        x:
          - id: x1
            run: echo "x1 -" >> "{{ inputs.log }}"; echo X1
          - id: x2
            run: echo "x2 -" >> "{{ inputs.log }}"; BLOCK; echo "{{ steps.x1.output }}X2"
        y:
          - id: y1
            run: echo "y1 -" >> "{{ inputs.log }}"; BLOCK; echo Y1
        z:
          - id: z1
            run: echo "z1 -" >> "{{ inputs.log }}"; echo Z1
          - id: z2
            run: echo "z2 -" >> "{{ inputs.log }}"; echo "{{ steps.z1.output }}Z2"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.lanes.output.x }}+{{ steps.lanes.output.z }}"
outputs:
  lanes: "{{ steps.lanes.output }}"
  after: "{{ steps.after.output }}"
""",
)

SUBWORKFLOW = workflow(
    "outer",
    """
steps:
  - id: before
    run: echo "before -" >> "{{ inputs.log }}"; echo go
  - id: one
    workflow: part.yaml
    with: {n: 1, log: "{{ inputs.log }}", gate: "{{ inputs.gate }}"}
  - id: two
    workflow: part.yaml
    with: {n: 2, log: "{{ inputs.log }}", gate: "{{ inputs.gate }}"}
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.one.output.out }}|{{ steps.two.output.out }}"
outputs:
  one: "{{ steps.one.output }}"
  after: "{{ steps.after.output }}"
""",
)

# Nested: the second of three iterations is killed inside its map, at the second item; the map's items
# and the iterations set variables that later steps read.
MAP_IN_LOOP = workflow(
    "map-in-loop",
    """
vars: {total: 0}
steps:
  - id: rounds
    loop:
      times: 3
      steps:
        - id: add
          set: {total: "{{ vars.total + loop.iteration }}"}
        - id: fan
          map:
            items: [1, 2, 3]
            concurrency: 1
            merge: list
            steps:
              - id: work
                run: >-
                  echo "work {{ loop.iteration }} {{ item }}" >> "{{ inputs.log }}";
                  if [ "{{ loop.iteration }}-{{ item }}" = 2-2 ]; then BLOCK; fi;
                  echo "{{ vars.total }}:{{ item }}"
              - id: mark
                set: {seen: "{{ steps.work.output }}"}
        - id: tail
          run: >-
            echo "tail {{ loop.iteration }}" >> "{{ inputs.log }}";
            echo "{{ steps.fan.output | length }}{{ vars.seen }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ vars.total }} {{ vars.seen }}"
outputs:
  rounds: "{{ steps.rounds.output }}"
  after: "{{ steps.after.output }}"
""",
)

# Nested: a try body's parallel is killed with one branch done (it set a variable) and one in flight.
PARALLEL_IN_TRY = workflow(
    "parallel-in-try",
    """
vars: {x: 0}
steps:
  - id: guard
    try:
      - id: lanes
        parallel:
          branches:
            a:
              - id: a1
                run: echo "a1 -" >> "{{ inputs.log }}"; echo A1
              - id: aset
                set: {x: 1}
            b:
              - id: b1
                run: echo "b1 -" >> "{{ inputs.log }}"; BLOCK; echo B1
      - id: body
        run: echo "body -" >> "{{ inputs.log }}"; echo "{{ steps.a1.output }}{{ steps.b1.output }}{{ vars.x }}"
    catch:
      - id: handler
        run: echo "catch -" >> "{{ inputs.log }}"; echo C
    finally:
      - id: fin
        run: echo "fin -" >> "{{ inputs.log }}"; echo "F{{ vars.x }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.guard.output }} {{ steps.fin.output }} {{ vars.x }}"
outputs:
  after: "{{ steps.after.output }}"
  branch: "{{ steps.guard.branch }}"
""",
)

# Two workers read a command's lines through a one-place buffer: item c is in flight, d and e completed.
STREAM = workflow(
    "stream",
    """
steps:
  - id: before
    run: echo "before -" >> "{{ inputs.log }}"; echo go
  - id: feed
    stream:
      from: {run: "printf 'a\\nb\\nc\\nd\\ne\\n'"}
      concurrency: 2
      buffer: 1
      collect: true
      as: letter
      steps:
        - id: first
          run: echo "first {{ letter }}" >> "{{ inputs.log }}"; echo "{{ letter | upper }}"
        - id: hold
          run: >-
            echo "hold {{ letter }}" >> "{{ inputs.log }}";
            if [ "{{ letter }}" = c ]; then BLOCK; fi;
            echo "{{ steps.first.output }}{{ index }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.feed.output | join(',') }} {{ steps.feed.count }}"
outputs:
  feed: "{{ steps.feed.output }}"
  after: "{{ steps.after.output }}"
""",
)

# Nested: the second of two iterations is killed inside the map of its stream's second batch.
STREAM_IN_LOOP = workflow(
    "stream-in-loop",
    """
steps:
  - id: rounds
    loop:
      times: 2
      steps:
        - id: feed
          stream:
            from: {items: [1, 2, 3, 4, 5]}
            batch: 2
            collect: true
            as: pair
            steps:
              - id: fan
                map:
                  items: "{{ pair }}"
                  steps:
                    - id: work
                      run: >-
                        echo "work {{ loop.iteration }} {{ item }}" >> "{{ inputs.log }}";
                        if [ "{{ loop.iteration }}-{{ item }}" = 2-3 ]; then BLOCK; fi;
                        echo "{{ loop.iteration }}:{{ item }}"
              - id: sum
                run: >-
                  echo "sum {{ loop.iteration }} {{ index }}" >> "{{ inputs.log }}";
                  echo "{{ steps.fan.output | join('+') }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.rounds.output | tojson }}"
outputs:
  rounds: "{{ steps.rounds.output }}"
  after: "{{ steps.after.output }}"
""",
)

PART = """\
version: 1
name: part
inputs:
  n: {type: integer}
  log: {type: string}
  gate: {type: string}
steps:
  - id: s1
    run: echo "s1 {{ inputs.n }}" >> "{{ inputs.log }}"; echo "S1-{{ inputs.n }}"
  - id: s2
    run: >-
      echo "s2 {{ inputs.n }}" >> "{{ inputs.log }}";
      if [ "{{ inputs.n }}" = 2 ]; then BLOCK; fi;
      echo "{{ steps.s1.output }}/S2"
  - id: s3
    run: echo "s3 {{ inputs.n }}" >> "{{ inputs.log }}"; echo "{{ steps.s2.output }}/S3"
outputs:
  out: "{{ steps.s3.output }}"
""".replace("BLOCK", BLOCK)


@dataclass(frozen=True)
class Scenario:
    """A workflow, the state that shows it reached the kill point, and what was in flight there."""

    files: Mapping[str, str]
    in_flight: tuple[str, ...]  # log lines of the steps blocked at the kill point: each must run once more
    journaled: tuple[str, ...] = ()  # journal paths: the work beside them has completed
    started_events: tuple[str, ...] = ()  # paths whose step.started is in events.jsonl (written ~20 ms late)


SCENARIOS = {
    "sequence": Scenario({"flow.yaml": SEQUENCE}, in_flight=("c -",)),
    # The third of five iterations: its 'first' step completed and stays done; 'hold' runs again.
    "loop-iteration": Scenario({"flow.yaml": LOOP}, in_flight=("hold 3",)),
    # Two slots, items 2 and 4 block: items 1 and 3 completed, 2 and 4 are in flight, 5 and 6 never started.
    "map-item": Scenario({"flow.yaml": MAP}, in_flight=("hold 2", "hold 4")),
    # Branch x is half done, y is in flight, z completed (its journal record is awaited, so the kill
    # point does not depend on how fast z runs).
    "parallel-branch": Scenario({"flow.yaml": PARALLEL}, in_flight=("x2 -", "y1 -"), journaled=("lanes/z/z2",)),
    # The first call of the sub-workflow completed; the second is killed inside, at its second step.
    "sub-workflow": Scenario({"flow.yaml": SUBWORKFLOW, "part.yaml": PART}, in_flight=("s2 2",)),
    # One item at a time: the first iteration and item 1 of the second completed.
    "map-in-loop": Scenario({"flow.yaml": MAP_IN_LOOP}, in_flight=("work 2 2",)),
    "stream-item": Scenario({"flow.yaml": STREAM}, in_flight=("hold c",), journaled=("feed[3]/hold", "feed[4]/hold")),
    "stream-in-loop": Scenario(
        {"flow.yaml": STREAM_IN_LOOP}, in_flight=("work 2 3",), journaled=("rounds[1]/feed[1]/fan[1]/work",)
    ),
    "parallel-in-try": Scenario(
        {"flow.yaml": PARALLEL_IN_TRY}, in_flight=("b1 -",), journaled=("guard/try/lanes/a/aset",)
    ),
}


# -- a project folder and the CLI run in it ----------------------------------------------------------------
@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Project:
    """A folder with the workflow files, the side-effect log, the gate and a run store of its own."""

    def __init__(self, root: Path, files: Mapping[str, str]) -> None:
        self.root = root
        root.mkdir(parents=True)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8")
        self.log = root / "log"
        self.gate = root / "gate"
        self.state = root / "state"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "llmflow", *args, "--state-dir", str(self.state)]

    def run_args(self) -> tuple[str, ...]:
        return ("run", "flow.yaml", "-i", f"log={self.log}", "-i", f"gate={self.gate}")

    def cli(self, *args: str) -> Result:
        done = subprocess.run(
            self.command(*args), cwd=self.root, env=environment(), capture_output=True, text=True, timeout=60
        )
        return Result(done.returncode, done.stdout, done.stderr)

    @contextmanager
    def background(self, *args: str, name: str = "run") -> Iterator[subprocess.Popen[bytes]]:
        """The CLI in a session of its own, output to files (a full pipe never blocks it); killed on exit."""
        with (self.root / f"{name}.out").open("wb") as out, (self.root / f"{name}.err").open("wb") as err:
            process = subprocess.Popen(
                self.command(*args), cwd=self.root, env=environment(), stdout=out, stderr=err, start_new_session=True
            )
            try:
                yield process
            finally:
                kill_tree(process)

    def output(self, name: str = "run") -> str:
        return (self.root / f"{name}.err").read_text(encoding="utf-8")

    def lines(self) -> Counter[str]:
        """How often each side effect happened."""
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return Counter(text.splitlines())

    def journal(self) -> Path:
        (journal,) = self.state.glob("runs/*/journal.jsonl")
        return journal

    def has_event(self, kind: str, path: str) -> bool:
        """Whether a complete line of ``events.jsonl`` records ``kind`` for ``path``."""
        needle = f'"type":"{kind}","path":"{path}"'
        for events in self.state.glob("runs/*/events.jsonl"):
            text = events.read_text(encoding="utf-8")
            if any(needle in line for line in text.splitlines(keepends=True) if line.endswith("\n")):
                return True
        return False

    def journaled(self) -> set[str]:
        """Paths of the complete journal records (a torn last line is not one)."""
        paths: set[str] = set()
        for journal in self.state.glob("runs/*/journal.jsonl"):
            for line in journal.read_text(encoding="utf-8").splitlines(keepends=True):
                if line.endswith("\n"):
                    paths.add(json.loads(line)["p"])
        return paths

    def listed(self) -> dict[str, Any]:
        """The one run as ``llmflow runs --json`` shows it."""
        listing = self.cli("runs", "--json")
        assert listing.code == 0, listing.stderr
        (run,) = listing.json()
        return dict(run)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1")
    env.pop("FORCE_COLOR", None)
    return env


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll state on disk until ``condition`` holds; fail at once if ``process`` ended meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        below = children.get(queue.pop(), [])
        found += below
        queue += below
    return found


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the CLI's process group and the groups of its step commands, as a power cut would.

    Step commands run in sessions of their own, so killing the CLI's group alone would leave them running.
    The CLI is stopped first so that it starts no new command while they are listed.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGSTOP)
        below = descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                group = os.getpgid(pid)
                if group != os.getpgrp():  # never the test's own group
                    os.killpg(group, signal.SIGKILL)
    process.wait(timeout=TIMEOUT)


def crash(project: Project, scenario: Scenario) -> str:
    """Start the run, wait until it reaches the scenario's kill point, kill it; the run's id."""
    with project.background(*project.run_args()) as process:

        def at_kill_point() -> bool:
            lines = project.lines()
            return (
                all(lines[line] for line in scenario.in_flight)
                and set(scenario.journaled) <= project.journaled()
                and all(project.has_event("step.started", path) for path in scenario.started_events)
            )

        wait_for(at_kill_point, f"{scenario.in_flight} to start", process)
    assert process.returncode == -signal.SIGKILL
    (run,) = project.state.glob("runs/*/run.json")
    return run.parent.name


def reference(root: Path, files: Mapping[str, str]) -> tuple[Any, Counter[str]]:
    """The outputs and side effects of an unbroken run (the gate is open from the start)."""
    project = Project(root, files)
    project.gate.touch()
    done = project.cli(*project.run_args(), "--json")
    assert done.code == 0, done.stderr
    lines = project.lines()
    assert set(lines.values()) == {1}, lines  # the unbroken run does every side effect once
    return done.json()["outputs"], lines


# -- the tests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_killed_run_resumes_to_the_outputs_of_an_unbroken_run(tmp_path: Path, scenario: Scenario) -> None:
    outputs, effects = reference(tmp_path / "reference", scenario.files)
    project = Project(tmp_path / "crashed", scenario.files)
    run_id = crash(project, scenario)
    before = project.listed()
    assert (before["id"], before["status"], before.get("stale")) == (run_id, "interrupted", True)

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["run_id"] == run_id
    assert resumed.json()["outputs"] == outputs
    assert project.lines() == effects + Counter(scenario.in_flight)
    assert project.listed()["status"] == "succeeded"


@pytest.mark.parametrize("event_cut", ["half", "newline"], ids=["event-half-written", "event-newline-missing"])
def test_a_run_killed_while_writing_resumes_past_its_torn_last_lines(tmp_path: Path, event_cut: str) -> None:
    # Killed once step c's start is in events.jsonl too, so that there is a last event line to tear (the
    # event writer lingers a moment after the first event, and a run can reach c before it wrote any).
    scenario = replace(SCENARIOS["sequence"], started_events=("c",))
    outputs, effects = reference(tmp_path / "reference", scenario.files)
    project = Project(tmp_path / "crashed", scenario.files)
    crash(project, scenario)
    journal = project.journal()
    assert json.loads(tear_last_line(journal, "half"))["p"] == "b"  # the record of 'b' was half written
    events = journal.with_name("events.jsonl")
    last_event = json.loads(tear_last_line(events, event_cut))

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == outputs
    assert project.lines() == effects + Counter(["b -", "c -"])
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [record["p"] for record in records] == ["a", "b", "c", "d"]  # the fragment was cut off first
    kept = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert [event["seq"] for event in kept] == list(range(1, len(kept) + 1))  # whole lines, numbered on
    assert (last_event in kept) == (event_cut == "newline")  # an event missing only its newline is kept


def tear_last_line(path: Path, cut: str) -> bytes:
    """Cut the file's last line in half, or only its newline, as a crash while writing it would; the line."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    end = start + (len(data) - start) // 2 if cut == "half" else len(data) - 1
    path.write_bytes(data[:end])
    return data[start:]


def test_a_killed_resume_is_resumed_again(tmp_path: Path) -> None:
    scenario = SCENARIOS["loop-iteration"]
    outputs, effects = reference(tmp_path / "reference", scenario.files)
    project = Project(tmp_path / "crashed", scenario.files)
    run_id = crash(project, scenario)
    with project.background("resume", "--last", name="resume") as first:
        wait_for(lambda: project.lines()["hold 3"] == 2, "the resume to reach 'hold 3' again", first)
        assert project.listed()["status"] == "running"
    assert first.returncode == -signal.SIGKILL
    assert project.listed()["status"] == "interrupted"

    project.gate.touch()
    resumed = project.cli("resume", run_id, "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == outputs
    assert project.lines() == effects + Counter(["hold 3", "hold 3"])
    assert project.listed()["status"] == "succeeded"


def test_a_second_resume_is_refused_while_the_first_drives_the_run(tmp_path: Path) -> None:
    scenario = SCENARIOS["sequence"]
    project = Project(tmp_path / "crashed", scenario.files)
    run_id = crash(project, scenario)
    with project.background("resume", "--last", "--json", name="resume") as first:
        wait_for(lambda: project.lines()["c -"] == 2, "the first resume to reach 'c' again", first)

        second = project.cli("resume", "--last")

        assert second.code == 2
        assert f"run {run_id} is being driven by pid {first.pid} on " in second.stderr
        assert project.listed()["status"] == "running"
        project.gate.touch()
        assert first.wait(timeout=TIMEOUT) == 0
    assert json.loads((project.root / "resume.out").read_text(encoding="utf-8"))["status"] == "succeeded"
    assert project.lines() == Counter({"a -": 1, "b -": 1, "c -": 2, "d -": 1})


CAUGHT_WORKFLOW = """
version: 1
name: caught
inputs:
  log: {type: string}
  gate: {type: string}
steps:
  - id: guarded
    try:
      - id: body
        run: 'echo body >> "{{ inputs.log }}"; test -e "{{ inputs.gate }}.ok" || exit 1'
    catch:
      - id: handler
        run: 'echo catch >> "{{ inputs.log }}"; while [ ! -e "{{ inputs.gate }}" ]; do sleep 0.05; done'
outputs:
  branch: "{{ steps.guarded.branch }}"
"""


def test_a_run_killed_in_catch_resumes_in_catch_without_retrying_the_body(tmp_path: Path) -> None:
    """Once a try's body failed and catch began, a resume finishes catch; it never tries the body again."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(CAUGHT_WORKFLOW, encoding="utf-8")
    log, gate = tmp_path / "log", tmp_path / "gate"
    state = str(tmp_path / "state")
    args = ["run", str(workflow), "--state-dir", state, "-i", f"log={log}", "-i", f"gate={gate}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "llmflow", *args],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: log.exists() and "catch" in log.read_text(encoding="utf-8"), "catch to begin", process)
    finally:
        kill_tree(process)
    (tmp_path / "gate.ok").touch()  # the body would succeed now: it must not be tried again
    gate.touch()
    resumed = subprocess.run(
        [sys.executable, "-m", "llmflow", "resume", "--last", "--json", "--state-dir", state],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"] == {"branch": "catch"}
    assert log.read_text(encoding="utf-8").split() == ["body", "catch", "catch"]


LEFTOVER_WORKFLOW = """
version: 1
name: leftover
inputs:
  dir: {type: string}
steps:
  - id: slow
    run: >-
      n=$(ls "{{ inputs.dir }}" | wc -l); echo $$ > "{{ inputs.dir }}/pid-$n";
      while [ ! -e "{{ inputs.dir }}/../gate-$n" ]; do sleep 0.05; done
"""


def test_a_resume_stops_the_commands_a_killed_driver_left_running(tmp_path: Path) -> None:
    """kill -9 of llmflow alone leaves its step commands running; the resume stops them before going on."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(LEFTOVER_WORKFLOW, encoding="utf-8")
    pids = tmp_path / "pids"
    pids.mkdir()
    state = str(tmp_path / "state")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmflow", "run", str(workflow), "--state-dir", state, "-i", f"dir={pids}"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: any(pids.iterdir()), "the step to start", process)
    finally:
        os.kill(process.pid, signal.SIGKILL)  # the driver only: its step command keeps running
        process.wait(timeout=TIMEOUT)
    (first,) = list(pids.iterdir())
    leftover = int(first.read_text().strip())
    os.kill(leftover, 0)  # still alive
    (tmp_path / "gate-1").touch()  # lets the resumed step finish; the leftover waits for gate-0 forever
    resumed = subprocess.run(
        [sys.executable, "-m", "llmflow", "resume", "--last", "--json", "--state-dir", state],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(leftover, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(leftover, os.WNOHANG)
        time.sleep(0.05)
    else:
        raise AssertionError(f"the leftover command {leftover} is still running")


# The group's attempt is the number of 'a' lines in the log. Attempt 1 fails at 'c'; attempt 2 is killed in 'b'.
RETRIED_GROUP = workflow(
    "retried",
    """
steps:
  - id: group
    retry: {attempts: 3, delay: 0}
    steps:
      - id: a
        run: echo "a -" >> "{{ inputs.log }}"; grep -c '^a -' "{{ inputs.log }}"
      - id: b
        run: >-
          echo "b {{ steps.a.output }}" >> "{{ inputs.log }}";
          if [ "{{ steps.a.output }}" = 2 ]; then BLOCK; fi;
          echo "B{{ steps.a.output }}"
      - id: c
        run: >-
          echo "c {{ steps.a.output }}" >> "{{ inputs.log }}";
          test "{{ steps.a.output }}" -ge 2 && echo "{{ steps.b.output }}C{{ steps.a.output }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.group.output }}/{{ steps.b.output }}"
outputs:
  group: "{{ steps.group.output }}"
  after: "{{ steps.after.output }}"
""",
)


def killed_then_resumed(tmp_path: Path, flow: str, outputs: Any, in_flight: str) -> tuple[Project, Project]:
    """Run ``flow`` unbroken (it gives ``outputs``), then again killed while ``in_flight`` runs, and resume
    it: the same outputs. The unbroken run's project and the resumed one's, to compare their logs."""
    reference_run = Project(tmp_path / "reference", {"flow.yaml": flow})
    reference_run.gate.touch()
    unbroken = reference_run.cli(*reference_run.run_args(), "--json")
    assert unbroken.code == 0, unbroken.stderr
    assert unbroken.json()["outputs"] == outputs
    project = Project(tmp_path / "crashed", {"flow.yaml": flow})
    crash(project, Scenario({}, in_flight=(in_flight,)))

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == outputs
    return reference_run, project


def test_a_run_killed_in_a_later_attempt_of_a_retried_group_keeps_to_that_attempt(tmp_path: Path) -> None:
    """What the group's first attempt completed is not restored into the attempt that was killed."""
    reference_run, project = killed_then_resumed(tmp_path, RETRIED_GROUP, {"group": "B2C2", "after": "B2C2/B2"}, "b 2")
    assert project.lines() == reference_run.lines() + Counter(["b 2"])


TOLERANT_MAP = workflow(
    "tolerant",
    """
steps:
  - id: fan
    map:
      items: [1, 2, 3, 4]
      concurrency: 1
      tolerated_failures: 1
      steps:
        - id: prep
          run: echo "prep {{ item }}" >> "{{ inputs.log }}"; echo P
        - id: work
          run: >-
            echo "work {{ item }}" >> "{{ inputs.log }}";
            if [ "{{ item }}" = 2 ] && [ ! -e "{{ inputs.gate }}" ]; then echo no >&2; exit 7; fi;
            if [ "{{ item }}" = 4 ]; then BLOCK; fi;
            echo "W{{ item }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.fan.errors | length }}"
outputs:
  fan: "{{ steps.fan.output }}"
  errors: "{{ steps.fan.errors }}"
""",
)


def test_a_map_item_whose_failure_was_tolerated_is_not_tried_again_after_a_kill(tmp_path: Path) -> None:
    """Item 2 failed (tolerated) before the kill: the resume keeps its failure, though it would pass now."""
    project = Project(tmp_path / "crashed", {"flow.yaml": TOLERANT_MAP})
    crash(project, Scenario({}, in_flight=("work 4",)))  # one item at a time: 1 to 3 are over

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 0, resumed.stderr
    outputs = resumed.json()["outputs"]
    assert outputs["fan"] == ["W1", None, "W3", "W4"]
    ((failed,),) = [[error for error in outputs["errors"] if error["index"] == 1]]
    assert (failed["item"], failed["error"]["step"], failed["error"]["kind"]) == (2, "fan[1]/work", "command")
    assert "exit code 7" in failed["error"]["message"]
    assert len(outputs["errors"]) == 1
    once = Counter([f"{step} {item}" for step in ("prep", "work") for item in (1, 2, 3, 4)] + ["after -"])
    assert project.lines() == once + Counter(["work 4"])


# 'c' fails while the gate is missing; 'ub', undoing 'b', waits for the gate: the run is killed compensating.
COMPENSATED = workflow(
    "compensated",
    """
steps:
  - id: a
    run: echo "a -" >> "{{ inputs.log }}"; echo A
    compensate:
      - id: ua
        run: echo "ua -" >> "{{ inputs.log }}"; echo UA
  - id: b
    run: echo "b -" >> "{{ inputs.log }}"; echo B
    compensate:
      - id: ub
        run: echo "ub -" >> "{{ inputs.log }}"; BLOCK; echo UB
  - id: c
    run: echo "c -" >> "{{ inputs.log }}"; test -e "{{ inputs.gate }}" || exit 4
""",
)


def test_a_run_killed_while_compensating_finishes_the_compensation_without_trying_the_failed_step_again(
    tmp_path: Path,
) -> None:
    """The failed step would pass now: trying it again would end the run succeeded with 'b' half undone."""
    project = Project(tmp_path / "crashed", {"flow.yaml": COMPENSATED})
    crash(project, Scenario({}, in_flight=("ub -",)))

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 1, resumed.stderr
    assert (resumed.json()["status"], resumed.json()["error"]) == (
        "failed",
        "step 'c': command failed with exit code 4",
    )
    assert project.lines() == Counter({"a -": 1, "b -": 1, "c -": 1, "ub -": 2, "ua -": 1})
    assert project.listed()["status"] == "failed"

    again = project.cli("resume", "--last", "--json")  # a resume of the failed run tries the workflow again

    assert again.code == 0, again.stderr
    assert project.lines() == Counter({"a -": 2, "b -": 2, "c -": 2, "ub -": 2, "ua -": 1})


# Attempt 1 sets n and fails at 'b'; attempt 2 is killed in 'hold', before it sets n again.
RETRIED_GROUP_WITH_VARIABLES = workflow(
    "retried-vars",
    """
vars: {n: 0}
steps:
  - id: group
    retry: {attempts: 2, delay: 0}
    steps:
      - id: a
        run: echo "a -" >> "{{ inputs.log }}"; grep -c '^a -' "{{ inputs.log }}"
      - id: hold
        run: >-
          echo "hold {{ steps.a.output }}" >> "{{ inputs.log }}";
          if [ "{{ steps.a.output }}" = 2 ]; then BLOCK; fi
      - id: inc
        set: {n: "{{ vars.n + 1 }}"}
      - id: b
        run: >-
          echo "b {{ steps.a.output }}" >> "{{ inputs.log }}";
          test "{{ steps.a.output }}" -ge 2 && echo "n={{ vars.n }}"
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ vars.n }} {{ steps.group.output }} {{ steps.group.attempts }}"
outputs:
  after: "{{ steps.after.output }}"
""",
)


def test_a_run_killed_in_a_later_attempt_of_a_retried_group_resumes_with_the_variables_it_began_with(
    tmp_path: Path,
) -> None:
    """Attempt 2 began with the n that attempt 1 set, and is attempt 2: the resume goes on from there."""
    reference_run, project = killed_then_resumed(tmp_path, RETRIED_GROUP_WITH_VARIABLES, {"after": "2 n=2 2"}, "hold 2")
    assert project.lines() == reference_run.lines() + Counter(["hold 2"])


# The step's attempt 1 fails; attempt 2 is killed (it waits for the gate). Each try logs its number.
RETRIED_STEP = workflow(
    "retried-step",
    """
steps:
  - id: flaky
    retry: {attempts: 3, delay: 0}
    run: >-
      c=$(grep -c '^try' "{{ inputs.log }}"); n=$((c + 1)); echo "try $n" >> "{{ inputs.log }}";
      if [ $n = 1 ]; then exit 3; fi; if [ $n = 2 ]; then BLOCK; fi; echo ok
outputs:
  attempts: "{{ steps.flaky.attempts }}"
""",
)


def test_a_step_killed_in_its_second_attempt_resumes_that_attempt(tmp_path: Path) -> None:
    """As an unbroken run, it took two attempts (the second ran twice: it was in flight at the kill)."""
    # {"attempts": 1} before: the resume began the attempts again
    _, project = killed_then_resumed(tmp_path, RETRIED_STEP, {"attempts": 2}, "try 2")
    assert project.lines() == Counter(["try 1", "try 2", "try 3"])


# The body fails while the gate is missing; the run is killed in the second step of the finally that follows.
FINALLY_AFTER_FAILURE = workflow(
    "finally-after-failure",
    """
steps:
  - id: guarded
    try:
      - id: body
        run: echo "body -" >> "{{ inputs.log }}"; test -e "{{ inputs.gate }}" || exit 3
    finally:
      - id: f1
        run: echo "f1 -" >> "{{ inputs.log }}"; echo F1
      - id: f2
        run: echo "f2 -" >> "{{ inputs.log }}"; BLOCK; echo F2
  - id: after
    run: echo "after -" >> "{{ inputs.log }}"; echo "{{ steps.f1.output }}{{ steps.f2.output }}"
outputs:
  after: "{{ steps.after.output }}"
""",
)


def test_a_run_killed_in_the_finally_of_a_failed_try_runs_the_whole_finally_again(tmp_path: Path) -> None:
    """The resume runs the try again (its body passes now), and after it the whole finally, f1 included."""
    project = Project(tmp_path / "crashed", {"flow.yaml": FINALLY_AFTER_FAILURE})
    crash(project, Scenario({}, in_flight=("f2 -",)))

    project.gate.touch()
    resumed = project.cli("resume", "--last", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == {"after": "F1F2"}
    assert project.lines() == Counter({"body -": 2, "f1 -": 2, "f2 -": 2, "after -": 1})
