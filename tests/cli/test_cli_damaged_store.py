"""A damaged run store or a hostile argument gets a one-line error naming the file, never a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result, command, environment

from llmflow.store.journal import encode_record

Cli = Callable[..., Result]
Write = Callable[..., Path]

FLOW = """\
version: 1
name: damaged
steps:
  - id: hello
    run: echo hello
  - id: boom
    fail: "went wrong"
"""


@pytest.fixture
def failed_run(cli: Cli, workflow: Write, runs_dir: Path) -> Path:
    """The folder of a failed run (so that ``resume`` reads all of it)."""
    workflow(FLOW)
    result = cli("run", "flow.yaml", "--json", "-q")
    assert result.code == 1
    return runs_dir / result.json()["run_id"]


def rewrite_meta(folder: Path, **members: object) -> None:
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    meta.update(members)
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")


def assert_one_line_error(result: Result, *, names: str) -> None:
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert names in result.stderr


@pytest.mark.parametrize(
    ("member", "value", "command"),
    [
        ("inputs", "fail=true", "resume"),
        ("usage", "lots", "show"),
        ("usage", {"input_tokens": "many"}, "report"),
        ("usage", {"input_tokens": float("inf")}, "show"),
        ("usage", {"cost": 10**400}, "report"),
        ("waiting_for", [1, 2], "show"),
        ("failed_step", 3, "show"),
        ("last_seq", "x", "resume"),
        ("status", "weird", "resume"),
        ("status", "weird", "cancel"),
    ],
    ids=[
        "inputs-a-string",
        "usage-a-string",
        "usage-not-numbers",
        "usage-infinity",
        "usage-beyond-a-float",
        "waiting-for-numbers",
        "failed-step-a-number",
        "last-seq-a-string",
        "status-unknown-resume",
        "status-unknown-cancel",
    ],
)
def test_a_run_json_member_of_the_wrong_type_is_reported_naming_the_file(
    cli: Cli, failed_run: Path, member: str, value: object, command: str
) -> None:
    rewrite_meta(failed_run, **{member: value})
    result = cli(command, failed_run.name)
    assert_one_line_error(result, names=f"{failed_run / 'run.json'}: run metadata member '{member}' is not")
    listed = cli("runs", "--json").json()
    assert [run["status"] for run in listed] == ["unreadable"]


def test_resume_of_a_run_json_without_its_source_names_the_missing_member(cli: Cli, failed_run: Path) -> None:
    meta = json.loads((failed_run / "run.json").read_text(encoding="utf-8"))
    del meta["source_main"]
    (failed_run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    result = cli("resume", failed_run.name)
    assert_one_line_error(result, names="run.json has no 'source_main'")
    assert json.loads((failed_run / "run.json").read_text(encoding="utf-8"))["status"] == "failed"


@pytest.mark.parametrize(
    ("record", "member"),
    [
        ({"p": "hello", "s": "succeeded", "m": "soon", "output": "hello"}, "m"),
        ({"p": "hello", "s": "succeeded", "m": [1], "output": "hello"}, "m"),
        ({"p": "hello", "s": "succeeded", "m": [1, 2], "x": [1], "output": "hello"}, "x"),
        ({"p": 7, "s": "succeeded"}, "p"),
    ],
    ids=["times-a-string", "times-short", "extra-a-list", "path-a-number"],
)
@pytest.mark.parametrize("command", [("show",), ("show", "--json"), ("resume",)])
def test_a_checksummed_journal_record_of_the_wrong_shape_is_reported_with_its_line(
    cli: Cli, failed_run: Path, record: dict[str, object], member: str, command: tuple[str, ...]
) -> None:
    journal = failed_run / "journal.jsonl"
    journal.write_bytes(journal.read_bytes() + encode_record(record))
    result = cli(command[0], failed_run.name, *command[1:])
    assert_one_line_error(result, names=f"{journal}:2: journal record member '{member}' is not")


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"p": "hello", "s": "paused", "output": "hello"}, "has a status llmflow does not know: 'paused'"),
        ({"p": "hello", "output": "hello"}, "has no status"),
    ],
    ids=["unknown", "missing"],
)
def test_a_checksummed_journal_record_with_a_status_llmflow_never_writes_is_reported(
    cli: Cli, failed_run: Path, record: dict[str, object], problem: str
) -> None:
    journal = failed_run / "journal.jsonl"
    before = journal.read_bytes() + encode_record(record)
    journal.write_bytes(before)
    result = cli("resume", failed_run.name)
    assert_one_line_error(result, names=f"{journal}:2: journal record {problem} (written by a newer llmflow?)")
    assert journal.read_bytes() == before


@pytest.mark.parametrize(
    "damage",
    [
        {"ts": "abc"},
        {"ts": float("inf")},
        {"ts": float("nan")},
        {"ts": 10**400},
        {"attempt": "2"},
        {"attempt": float("inf")},
        {"data": [1]},
        {"data": "text"},
        {"type": "map.item", "data": [1]},
        {"type": "llm.usage", "data": {"input_tokens": float("inf"), "cost": float("nan")}},
        {"type": "llm.usage", "data": {"output_tokens": 10**400}},
    ],
    ids=lambda damage: json.dumps(damage)[:40],
)
def test_an_event_line_with_members_of_the_wrong_shape_is_passed_over(
    cli: Cli, failed_run: Path, damage: dict[str, object]
) -> None:
    events = failed_run / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    event = {**json.loads(lines[1]), **damage}
    events.write_bytes(b"".join([*lines[:2], json.dumps(event).encode() + b"\n", *lines[2:]]))
    for args in [("show",), ("show", "--json"), ("report", "-o", "-")]:
        result = cli(args[0], failed_run.name, *args[1:])
        assert (result.code, result.stderr) == (0, ""), args
        assert "went wrong" in result.stdout


@pytest.mark.parametrize(
    ("stamp", "zone"),
    [("0001-01-01T00:00:00Z", "XST8"), ("9999-12-31T23:59:59Z", "XST-14")],
    ids=["year-1", "year-9999"],
)
def test_a_run_time_the_local_zone_pushes_out_of_range_is_shown_in_utc(
    failed_run: Path, tmp_path: Path, stamp: str, zone: str
) -> None:
    rewrite_meta(failed_run, created=stamp, started=stamp, ended=stamp)
    for args in (("runs",), ("show", failed_run.name)):
        done = subprocess.run(
            command(*args), cwd=tmp_path, env={**environment(), "TZ": zone}, capture_output=True, text=True
        )
        assert (done.returncode, done.stderr) == (0, ""), args
        assert f"{stamp[:-1].replace('T', ' ').lstrip('0')} UTC" in done.stdout


@pytest.mark.parametrize(
    ("name", "command"), [("journal.jsonl", "show"), ("journal.jsonl", "resume"), ("events.jsonl", "logs")]
)
def test_a_run_file_that_is_a_folder_is_reported(cli: Cli, failed_run: Path, name: str, command: str) -> None:
    (failed_run / name).unlink()
    (failed_run / name).mkdir()
    result = cli(command, failed_run.name)
    assert_one_line_error(result, names=f"cannot read {failed_run / name}: Is a directory")


@pytest.mark.parametrize("command", [("runs",), ("show", "--last"), ("gc",)])
def test_a_runs_folder_that_is_a_file_is_reported(cli: Cli, runs_dir: Path, command: tuple[str, ...]) -> None:
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("not a folder", encoding="utf-8")
    result = cli(*command)
    assert_one_line_error(result, names=f"cannot list the runs in {runs_dir}: Not a directory")


@pytest.mark.parametrize(
    "command", [("show", "--last"), ("show", "2"), ("logs", "--last"), ("report", "--last", "-o", "-")]
)
def test_a_folder_without_run_json_is_not_a_run_to_last_or_a_prefix(
    cli: Cli, failed_run: Path, runs_dir: Path, command: tuple[str, ...]
) -> None:
    (runs_dir / "backup").mkdir()  # sorts after every run id
    (runs_dir / f"{failed_run.name}.old").mkdir()
    result = cli(*[failed_run.name[:2] if arg == "2" else arg for arg in command])
    assert result.code == 0, result.stderr
    assert "went wrong" in result.stdout


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["delete", "dry-run"])
@pytest.mark.parametrize("age", ["99999999999999d", "9999999999999999999999h"])
def test_gc_older_than_more_than_dates_reach_removes_nothing(
    cli: Cli, failed_run: Path, age: str, dry_run: tuple[str, ...]
) -> None:
    result = cli("gc", "--older-than", age, *dry_run)
    assert result.code == 0, result.stderr
    assert result.stderr.endswith(f"remove{'d' * (not dry_run)} 0 runs older than {age}\n")
    assert failed_run.is_dir()


def test_a_workflow_that_is_a_symlink_loop_is_a_one_line_diagnostic(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    result = cli("run", "a.yaml")
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("a.yaml:1:1: error[file-unreadable]: cannot read a.yaml: too many levels")


def test_logs_of_a_run_without_events_jsonl_says_so(cli: Cli, failed_run: Path) -> None:
    (failed_run / "events.jsonl").unlink()
    result = cli("logs", failed_run.name)
    assert result.code == 0 and result.stdout == ""
    assert result.stderr == f"run {failed_run.name} has no events.jsonl: it recorded no events\n"


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("command", [("show",), ("logs",), ("report", "-o", "-"), ("resume",)])
def test_a_run_json_nested_too_deeply_to_parse_is_a_one_line_error(
    cli: Cli, failed_run: Path, command: tuple[str, ...]
) -> None:
    text = (failed_run / "run.json").read_text(encoding="utf-8")
    (failed_run / "run.json").write_text(text.replace('"usage": {', f'"deep": {DEEP}, "usage": {{', 1), "utf-8")
    result = cli(command[0], failed_run.name, *command[1:])
    assert_one_line_error(result, names="run.json: run metadata is nested too deeply")


def test_an_event_line_nested_too_deeply_to_parse_is_passed_over_or_shown_damaged(cli: Cli, failed_run: Path) -> None:
    deep = b'{"v":1,"seq":99,"type":"step.completed","path":"hello","data":' + DEEP.encode() + b"}\n"
    with (failed_run / "events.jsonl").open("ab") as events:
        events.write(deep)
    for args in [("show",), ("show", "--json"), ("report", "-o", "-")]:
        result = cli(args[0], failed_run.name, *args[1:])
        assert (result.code, result.stderr) == (0, ""), args
        assert "went wrong" in result.stdout
    logs = cli("logs", failed_run.name)
    assert logs.code == 0, logs.stderr
    assert logs.stdout.splitlines()[-1].startswith("events.jsonl:") and "not an event" in logs.stdout
    as_json = cli("logs", failed_run.name, "--json")
    assert as_json.code == 0 and "not an event" in as_json.stderr
    resumed = cli("resume", failed_run.name)
    assert resumed.code == 1 and "Traceback" not in resumed.stderr
    assert "went wrong" in resumed.stdout + resumed.stderr


@pytest.mark.parametrize("command", [("show",), ("report", "-o", "-"), ("resume",)])
def test_a_checksummed_journal_record_nested_too_deeply_is_reported_with_its_line(
    cli: Cli, failed_run: Path, command: tuple[str, ...]
) -> None:
    from llmflow.store.journal import _sealed

    journal = failed_run / "journal.jsonl"
    deep = b'{"p":"hello","s":"succeeded","output":' + DEEP.encode() + b"}"
    journal.write_bytes(_sealed(deep) + journal.read_bytes())
    result = cli(command[0], failed_run.name, *command[1:])
    assert_one_line_error(result, names="journal.jsonl:1: journal record is nested too deeply")
