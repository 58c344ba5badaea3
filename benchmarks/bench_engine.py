"""Engine benchmark: per-step overhead, journal bytes and checkpoint cost, events, parallel waits, resume, cold run.

Run: ``python benchmarks/bench_engine.py [--repeat N] [--dir FOLDER] [--only NAME ...]``. Every number is the
median and the p99 over the samples taken (``--repeat`` runs, or many calls in one run where said), printed
next to its target. The run store lives in a temporary folder under ``--dir`` (default: the system temporary
folder), so the fsync floor printed first is measured on the same disk as the runs.

How each number is taken:

* **per-step overhead**: workflows of N ``set`` steps (no subprocesses). The run's fixed start and end cost
  (creating the run folder, ``run.json``, the first and last events, closing) is taken out by timing only the
  span from the first ``step.started`` to the last ``step.completed`` (seen by a sink, which the bus calls
  synchronously) and dividing by N. The slope between the 100- and 1000-step runs ((T1000 - T100) / 900, whole
  wall times) is printed as a cross-check; both should agree and stay flat as the run grows.
* **bytes written / bytes produced**: every byte in the run folder after a run of 200 steps that each produce a
  2 KB value, over the JSON bytes of those values: English prose (what models write), JSON records, and random
  data (the worst case: the journal stores outputs of 1 KB and more compressed, and random data does not pack).
* **checkpoint**: the time the engine spends journaling one completed step (``Engine.journal``: encoding, the
  write, and waiting for the fsync) for the first and the last 101 steps of one 10,000-step run, durable
  (``strict``: mostly the fsync) and not (``none``: only the engine's and the store's own work). The ratio is
  taken within each run (last window's median over the first's) and its median over the runs is printed:
  the machine's speed drifts more between runs than within one.
* **event emission**: microseconds per ``EventBus.emit`` of a ``step.completed``-shaped event on the emitting
  thread (the sinks' writer threads run meanwhile, as in a run).
* **resume**: a run of N completed ``set`` steps whose last step failed; from the ``resume_run`` call to the
  engine starting that last step again, and the whole resume to its end state. For reference, the time a new
  run of the same workflow (``strict``) takes to start its first step: the start-up both share (the event
  loop, the run folder's lock and ``run.json``, the graph, the event writer).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BLOB = 2048


# -- numbers -------------------------------------------------------------------------------------------
def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def line(label: str, samples: list[float], unit: str, target: float | None, scale: float = 1.0) -> None:
    """One result: median and p99 (``samples`` in seconds, or plain numbers with ``scale`` 1), and the target."""
    median = statistics.median(samples) * scale
    worst = p99(samples) * scale
    verdict = ""
    if target is not None:
        verdict = f"target <= {target:g} {unit}  " + ("ok" if median <= target else "OVER")
    print(f"  {label:46s} median {median:9.3f} {unit:3s} p99 {worst:9.3f} {unit:3s}  {verdict}")


# -- workflows -----------------------------------------------------------------------------------------
class Project:
    """A temporary project folder: workflow files and a run store beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def options(self, durability: str = "strict", sinks: list[Any] | None = None) -> Any:
        from llmflow.runtime import RunOptions

        chosen: Any = durability  # one of strict, batch, none
        return RunOptions(state_dir=str(self.state), durability=chosen, sinks=sinks or [], handle_signals=False)

    def run(self, workflow: Any, durability: str = "strict", sinks: list[Any] | None = None, **inputs: Any) -> Any:
        from llmflow.runtime import start_run

        summary = asyncio.run(start_run(workflow, inputs, self.options(durability, sinks)))
        if summary.status != "succeeded":
            raise SystemExit(f"benchmark run failed: {summary.error}")
        return summary

    def run_dir(self, run_id: str) -> Path:
        return self.state / "runs" / run_id


def set_steps(count: int, last: str = "") -> str:
    steps = "".join(f"  - {{id: s{i}, set: {{x: {i}}}}}\n" for i in range(count))
    return "version: 1\nname: bench\nsteps:\n" + steps + last


class Clock:
    """A sink noting when the first step (or the one at ``first_path``) started or was skipped, and when the
    last step completed (the bus calls ``put`` inline)."""

    def __init__(self, first_path: str | None = None) -> None:
        self.first_path = first_path
        self.first_started: float | None = None
        self.last_completed = 0.0

    def put(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        first = self.first_path is None or event["path"] == self.first_path
        if self.first_started is None and kind in ("step.started", "step.skipped") and first:
            self.first_started = time.perf_counter()
        if kind == "step.completed":
            self.last_completed = time.perf_counter()

    def close(self) -> None:
        pass


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# -- the benchmarks ------------------------------------------------------------------------------------
def bench_floor(project: Project, repeat: int) -> float:
    path = project.root / "floor.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * 1023 + b"\n"
    samples = []
    try:
        for _ in range(max(200, repeat * 40)):
            start = time.perf_counter()
            os.write(fd, record)
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    print("Machine floor (same disk as the run store):")
    line("1 KB append + fsync", samples, "ms", None, 1e3)
    # Per-step overheads are averages over a run, so the floor to hold them against is the mean.
    print(f"  {'1 KB append + fsync, mean':46s} {statistics.mean(samples) * 1e3:16.3f} ms")
    return statistics.median(samples)


def bench_steps(project: Project, repeat: int) -> None:
    import llmflow

    print("Per-step overhead of no-op (set) steps; (last step.completed - first step.started) / steps:")
    workflows = {n: llmflow.load(project.write(f"steps{n}.yaml", set_steps(n))) for n in (100, 1000)}
    targets = {"strict": 0.4, "none": 0.1}
    for durability in ("strict", "none"):
        per_step: dict[int, list[float]] = {100: [], 1000: []}
        walls: dict[int, list[float]] = {100: [], 1000: []}
        project.run(workflows[100], durability)  # warm up imports and caches
        for _ in range(repeat):
            for steps, workflow in workflows.items():
                clock = Clock()
                start = time.perf_counter()
                project.run(workflow, durability, [clock])
                walls[steps].append(time.perf_counter() - start)
                assert clock.first_started is not None
                per_step[steps].append((clock.last_completed - clock.first_started) / steps)
        for steps in (100, 1000):
            line(f"{durability:6s} {steps:4d} steps, per step", per_step[steps], "ms", targets[durability], 1e3)
        slopes = [(b - a) / 900 for a, b in zip(walls[100], walls[1000], strict=True)]
        line(f"{durability:6s} slope 100->1000 steps (wall)", slopes, "ms", targets[durability], 1e3)
        fixed = [wall - per * 100 for wall, per in zip(walls[100], per_step[100], strict=True)]
        line(f"{durability:6s} fixed start/end cost of a run", fixed, "ms", None, 1e3)


def sample_outputs() -> dict[str, Any]:
    """2 KB outputs of the kinds steps produce: prose (what models write), JSON records, and random data.

    The prose is real English from the standard library's own docstrings, a different 2 KB window per step;
    the random data (base64 of random bytes) is the worst case: no compressor can pack it.
    """
    import argparse
    import json
    import subprocess
    import typing

    corpus = " ".join(" ".join((module.__doc__ or "").split()) for module in (argparse, subprocess, typing, json))
    prose = [(corpus * 2)[i * 97 % len(corpus) :][:BLOB] for i in range(200)]
    records = []
    while len(json.dumps(records)) < BLOB:
        i = len(records)
        records.append({"id": i, "title": prose[i][:40].strip(), "score": round(0.37 * i % 1, 3), "tags": ["a", "b"]})
    return {
        "prose": prose,
        "JSON records": records,
        "random data": base64.b64encode(os.urandom(BLOB * 3 // 4)).decode(),
    }


def bench_bytes(project: Project, repeat: int) -> None:
    import json

    import llmflow

    print(f"Bytes written to the run folder / bytes of output produced (200 steps of ~{BLOB} B each):")
    outputs = sample_outputs()
    project.write(
        "blobs.py",
        f"import json\nOUTPUTS = json.loads({json.dumps(json.dumps(outputs))})\n"
        + ("def blob(kind, i):\n    value = OUTPUTS[kind]\n    return value[i] if kind == 'prose' else value\n"),
    )
    cases: dict[str, tuple[str, int]] = {}
    prose = outputs["prose"]
    cases["set of 2 KB of prose (one text, every step)"] = (
        "version: 1\nname: bytes\ninputs:\n  blob: {type: string}\nsteps:\n"
        + "".join(f"  - {{id: s{i}, set: {{v: '{{{{ inputs.blob }}}}'}}}}\n" for i in range(200)),
        200 * len(json.dumps({"v": prose[0]}, ensure_ascii=False).encode()),
    )
    for kind, value in outputs.items():
        produced = sum(
            len(json.dumps(prose[i] if kind == "prose" else value, ensure_ascii=False).encode()) for i in range(200)
        )
        steps = "".join(
            f"  - {{id: s{i}, python: {{call: 'blobs:blob', with: {{kind: {kind!r}, i: {i}}}}}}}\n" for i in range(200)
        )
        cases[f"python step returning 2 KB of {kind}"] = ("version: 1\nname: bytes\nsteps:\n" + steps, produced)
    for label, (text, produced) in cases.items():
        workflow = llmflow.load(project.write("bytes.yaml", text))
        ratios: list[float] = []
        parts: dict[str, int] = {}
        for _ in range(max(1, repeat // 2)):
            summary = project.run(workflow, "none", blob=prose[0]) if "set" in label else project.run(workflow, "none")
            folder = project.run_dir(summary.run_id)
            ratios.append(folder_bytes(folder) / produced)
            parts = {name: (folder / name).stat().st_size for name in ("journal.jsonl", "events.jsonl", "run.json")}
            parts["artifacts/"] = folder_bytes(folder / "artifacts")
        line(label, ratios, "x", 1.1)
        print("      " + ", ".join(f"{name} {size / 200:.0f} B/step" for name, size in parts.items()))


@contextmanager
def journal_timer() -> Iterator[list[float]]:
    """Time every ``Engine.journal`` call (sync or async) while the context is open."""
    from llmflow.engine.runner import Engine

    original: Any = Engine.journal  # a coroutine function since group commit; a plain one before
    samples: list[float] = []
    if inspect.iscoroutinefunction(original):

        async def timed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = await original(self, *args, **kwargs)
            samples.append(time.perf_counter() - start)
            return result

        Engine.journal = timed_async  # type: ignore[method-assign]
    else:

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(self, *args, **kwargs)
            samples.append(time.perf_counter() - start)
            return result

        Engine.journal = timed  # type: ignore[method-assign]
    try:
        yield samples
    finally:
        Engine.journal = original  # type: ignore[method-assign]


def bench_checkpoint(project: Project, repeat: int) -> None:
    import llmflow

    window = 101
    print(f"Checkpoint (Engine.journal: encode, write, fsync), first and last {window} steps of a 10,000-step run:")
    workflow = llmflow.load(project.write("steps10k.yaml", set_steps(10_000)))
    for durability in ("strict", "none"):
        early: list[float] = []
        late: list[float] = []
        ratios: list[float] = []  # within each run: the machine's speed drifts between runs more than within one
        for _ in range(max(1, repeat // 2 if durability == "strict" else repeat)):  # `none` is noisier, and quick
            with journal_timer() as samples:
                project.run(workflow, durability)
            assert len(samples) == 10_000, len(samples)
            early += samples[:window]
            late += samples[-window:]
            ratios.append(statistics.median(samples[-window:]) / statistics.median(samples[:window]))
        line(f"{durability:6s} steps 1-{window}", early, "ms", None, 1e3)
        line(f"{durability:6s} steps {10_001 - window:,}-10,000", late, "ms", None, 1e3)
        ratio = statistics.median(ratios)
        verdict = "ok" if ratio <= 1.2 else "OVER"
        label = f"{durability:6s} step 10,000 / step 10 (a run)"
        each = ", ".join(f"{value:.2f}" for value in ratios)
        print(f"  {label:46s} {ratio:9.3f} x  median of {each:14s} target <= 1.2 x  {verdict}")


def bench_events(project: Project, repeat: int) -> None:
    from llmflow.engine.events import EventBus
    from llmflow.sinks import FileEventSink, StreamEventSink

    print("Event emission (EventBus.emit of a step.completed event, per call):")
    data = {"id": "summarise", "kind": "llm", "duration": 0.012345, "preview": "The quick brown fox " * 4}
    batch = 5_000

    def sample(sinks: int) -> list[float]:
        per_call: list[float] = []
        for attempt in range(repeat + 1):
            bus = EventBus("20261126-114807-k3f9")
            bus.add(FileEventSink(project.root / "events.jsonl"))
            extras: list[Any] = []
            if sinks == 3:
                from llmflow.cli.console import make_console

                extras = [open(os.devnull, "w"), open(os.devnull, "w")]  # noqa: SIM115 (closed below)
                bus.add(StreamEventSink(extras[0]))
                bus.add(make_console(extras[1], live=False, attempts=None))
            start = time.perf_counter()
            for index in range(batch):
                bus.emit("step.completed", f"step{index}", data, 1)
            elapsed = time.perf_counter() - start
            bus.close()
            for stream in extras:
                stream.close()
            (project.root / "events.jsonl").unlink()
            if attempt:  # the first round warms up
                per_call.append(elapsed / batch)
        return per_call

    line("file sink", sample(1), "us", 20, 1e6)
    line("file + --events jsonl + console sinks", sample(3), "us", 20, 1e6)


def bench_parallel(project: Project, repeat: int) -> None:
    import llmflow

    print("50 parallel branches, each `wait: 200ms` (whole run, wall):")
    branches = "".join(f"        b{i}: [{{id: w{i}, wait: 200ms}}]\n" for i in range(50))
    text = "version: 1\nname: fan\nsteps:\n  - id: p\n    parallel:\n      branches:\n" + branches
    workflow = llmflow.load(project.write("fan.yaml", text))
    for durability in ("strict", "none"):
        walls = []
        for _ in range(repeat):
            start = time.perf_counter()
            project.run(workflow, durability)
            walls.append(time.perf_counter() - start)
        line(f"durability {durability}", walls, "s", 0.23)


def bench_resume(project: Project, repeat: int) -> None:
    import llmflow
    import llmflow.runtime as runtime
    from llmflow.runtime import ResumeRequest, resume_run, start_run

    print("Resume of a run whose N set steps completed and whose last step failed (strict):")
    # The last step runs in both drives (a skipped one would be journaled, fsync and all, before its event).
    project.write("gate.py", "def check(ok):\n    if str(ok).lower() != 'true':\n        raise ValueError('not yet')\n")
    last = "  - {id: last, python: {call: 'gate:check', with: {ok: '{{ inputs.ok }}'}}}\n"
    targets = {100: 5.0, 1000: 15.0}
    compiling: list[float] = []
    load_run_workflow = runtime.load_run_workflow

    def timed_load(*args: Any) -> Any:  # the frozen workflow is loaded and compiled again on every resume
        start = time.perf_counter()
        try:
            return load_run_workflow(*args)
        finally:
            compiling.append(time.perf_counter() - start)

    runtime.load_run_workflow = timed_load  # type: ignore[assignment]
    try:
        for steps in (100, 1000):
            inputs = "inputs:\n  ok: {type: boolean, default: false}\nsteps:\n"
            text = set_steps(steps, last).replace("steps:\n", inputs, 1)
            workflow = llmflow.load(project.write(f"resume{steps}.yaml", text))
            first_new: list[float] = []
            whole: list[float] = []
            compiled: list[float] = []
            fresh: list[float] = []
            for round_ in range(repeat + 1):  # round 0 warms up
                clock = Clock()
                start = time.perf_counter()
                failed = asyncio.run(start_run(workflow, {}, project.options("strict", [clock])))
                assert failed.status == "failed", failed.status
                assert clock.first_started is not None
                if round_:
                    fresh.append(clock.first_started - start)
                clock = Clock(first_path="last")
                request = ResumeRequest(selector=failed.run_id, inputs={"ok": "true"})
                compiling.clear()
                start = time.perf_counter()
                done = asyncio.run(resume_run(request, project.options("strict", [clock])))
                end = time.perf_counter()
                assert done.status == "succeeded", done.error
                assert clock.first_started is not None
                if round_:
                    first_new.append(clock.first_started - start)
                    whole.append(end - start)
                    compiled.append(sum(compiling))
                shutil.rmtree(project.run_dir(failed.run_id))
            line(f"{steps:4d} steps: resume_run -> first new step", first_new, "ms", targets[steps], 1e3)
            line("      of which: load + compile frozen source", compiled, "ms", None, 1e3)
            rest = [a - b for a, b in zip(first_new, compiled, strict=True)]
            line("      of which: the rest (store, replay...)", rest, "ms", None, 1e3)
            line(f"{steps:4d} steps: whole resume", whole, "ms", None, 1e3)
            line("      for reference: new run -> first step", fresh, "ms", None, 1e3)
    finally:
        runtime.load_run_workflow = load_run_workflow


def bench_cold(project: Project, repeat: int) -> None:
    print("Cold process (whole-process wall time, with a warm bytecode cache as an installed package has):")
    workflow = project.write(
        "three.yaml", "version: 1\nname: three\nsteps:\n  - set: {a: 1}\n  - set: {b: 2}\n  - run: echo hi\n"
    )
    # PYTHONDONTWRITEBYTECODE (set in some development shells) would make every run compile every module
    # again; the cache goes to the temporary folder, not into the source tree.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(project.root / "pycache")
    arguments = ["run", str(workflow), "-q", "--state-dir", str(project.state)]
    # The command users type is the installed ``llmflow`` script; ``python -m llmflow`` also loads runpy.
    script = Path(sys.executable).with_name("llmflow.exe" if os.name == "nt" else "llmflow")
    commands: dict[str, tuple[list[str], float | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "python -c 'import asyncio' (floor)": ([sys.executable, "-c", "import asyncio"], None),
        "python -m llmflow run (3 steps)": ([sys.executable, "-m", "llmflow", *arguments], None),
    }
    if script.exists():
        commands["llmflow run (3 steps: set, set, run: echo hi)"] = ([str(script), *arguments], 150.0)
    else:
        print(f"  (no installed script at {script}: the target applies to python -m llmflow)")
        commands["python -m llmflow run (3 steps)"] = (commands["python -m llmflow run (3 steps)"][0], 150.0)
    for command, _target in commands.values():
        subprocess.run(command, capture_output=True, check=True, cwd=project.root, env=env)  # fill the caches
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeat):  # round-robin, so that the machine's drift touches every command alike
        for label, (command, _target) in commands.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True, cwd=project.root, env=env)
            samples[label].append(time.perf_counter() - start)
    for label, (_command, target) in commands.items():
        line(label, samples[label], "ms", target, 1e3)


BENCHMARKS: dict[str, Callable[[Project, int], object]] = {
    "floor": bench_floor,
    "steps": bench_steps,
    "bytes": bench_bytes,
    "checkpoint": bench_checkpoint,
    "events": bench_events,
    "parallel": bench_parallel,
    "resume": bench_resume,
    "cold": bench_cold,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (default 7)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temporary run store")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args()
    chosen = args.only or list(BENCHMARKS)
    if args.dir is not None and not args.dir.is_dir():
        parser.error(f"--dir {args.dir}: no such folder")
    with tempfile.TemporaryDirectory(prefix="llmflow-bench-", dir=args.dir) as folder:
        project = Project(Path(folder))
        for name in BENCHMARKS:
            if name in chosen:
                BENCHMARKS[name](project, max(1, args.repeat))


if __name__ == "__main__":
    main()
