"""Front-end benchmark: load / validate / compile times for generated workflows, and cold CLI start-up.

Run: ``python benchmarks/bench_compile.py [--repeat N]``. Prints medians and p99s in milliseconds.

The in-process stages are measured with llmflow's caches off (``LLMFLOW_NO_CACHE=1``): every sample checks
and compiles for real. The cold processes run as users run them, caches on (after one warm-up run, so the
schema check and the graph come from the user cache folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(steps: int) -> str:
    """A workflow of ``steps`` nodes mixing shell steps, model calls, conditions, maps and variables."""
    lines = [
        "version: 1",
        "name: generated",
        "inputs:",
        "  topic: {type: string, default: testing}",
        "  limit: {type: integer, default: 3}",
        "models:",
        "  fast: mock/echo",
        "steps:",
    ]
    for index in range(steps):
        kind = index % 5
        previous = f"s{index - 1}" if index else None
        lines.append(f"  - id: s{index}")
        if kind == 0:
            lines.append(f'    run: echo "{{{{ inputs.topic }}}} {index}"')
        elif kind == 1:
            lines += [
                "    llm:",
                "      model: fast",
                f'      prompt: "Summarise {{{{ steps.{previous}.output }}}} for {{{{ inputs.topic }}}}"',
            ]
        elif kind == 2:
            lines += [f"    if: len(steps.{previous}.output) > 0", f"    set: {{v{index}: '{{{{ inputs.limit }}}}'}}"]
        elif kind == 3:
            lines += [
                "    map:",
                "      items: [a, b, c]",
                "      steps:",
                f"        - id: m{index}",
                f'          run: echo "{{{{ item }}}} {{{{ vars.v{index - 1} }}}}"',
            ]
        else:
            lines += [f"    write: {{path: 'out/{index}.txt', content: '{{{{ steps.{previous}.output }}}}'}}"]
    lines += ["outputs:", f'  last: "{{{{ steps.s{steps - 1}.output }}}}"']
    return "\n".join(lines) + "\n"


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):7.2f} ms   p99 {p99:7.2f} ms"


def bench_stages(repeat: int) -> None:
    os.environ["LLMFLOW_NO_CACHE"] = "1"  # read once, on first use: set before anything of llmflow runs
    from llmflow.compiler import CompileSession, compile_document
    from llmflow.spec.loader import load_text
    from llmflow.spec.validator import validate_document

    print("In-process front end (load + validate + compile):")
    validate_document(load_text(generate(5), "warmup.yaml"))  # schema and imports loaded once, like a real run
    for steps in (10, 100, 1000):
        text = generate(steps)
        with tempfile.TemporaryDirectory() as folder:
            directory = str(folder)
            loads = timed(partial(load_text, text, "gen.yaml", directory=directory), repeat)
            doc = load_text(text, "gen.yaml", directory=directory)
            validations = timed(partial(validate_document, doc), repeat)
            compiles = timed(partial(compile_document, doc, session=CompileSession()), repeat)
            totals = [a + b + c for a, b, c in zip(loads, validations, compiles, strict=True)]
        print(f"  {steps:5d} steps ({len(text.splitlines()):5d} lines)")
        print(f"      load      {summary(loads)}")
        print(f"      validate  {summary(validations)}")
        print(f"      compile   {summary(compiles)}")
        print(f"      total     {summary(totals)}   per step {statistics.median(totals) / steps:.3f} ms")


def bench_processes(repeat: int) -> None:
    example = ROOT / "examples" / "hello.yaml"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "llmflow --help": [sys.executable, "-m", "llmflow", "--help"],
        "llmflow validate examples/hello.yaml": [sys.executable, "-m", "llmflow", "validate", str(example)],
    }
    env = {key: value for key, value in os.environ.items() if key != "LLMFLOW_NO_CACHE"}
    print("Cold processes (whole-process wall time):")
    for label, command in commands.items():
        subprocess.run(command, capture_output=True, check=False, env=env)  # warm the file cache and llmflow's
        samples = timed(
            lambda command=command: subprocess.run(command, capture_output=True, check=False, env=env), repeat
        )
        print(f"  {label:40s} {summary(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    bench_stages(args.repeat)
    bench_processes(max(5, args.repeat // 2))


if __name__ == "__main__":
    main()
