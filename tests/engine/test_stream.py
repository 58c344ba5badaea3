"""Streams: items from a file, a command or a list, through a bounded buffer and workers; resume continues."""

from __future__ import annotations

import json

import pytest
from engine_helpers import Flow


def test_jsonl_file_items_collected_in_source_order(flow: Flow) -> None:
    flow.write("rows.jsonl", "\n".join(json.dumps({"n": n}) for n in range(20)) + "\n")
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {file: rows.jsonl}
              format: jsonl
              concurrency: 4
              buffer: 3
              collect: true
              as: row
              steps:
                - id: double
                  run: echo {{ row.n * 2 }}
                  parse: json
        outputs: {all: "{{ steps.s.output }}", count: "{{ steps.s.count }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"all": [n * 2 for n in range(20)], "count": 20}


def test_command_source_csv_and_batches(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {run: "printf 'name,qty\\\\na,1\\\\nb,2\\\\nc,3\\\\n'"}
              format: csv
              batch: 2
              collect: true
              steps:
                - id: names
                  run: echo "{{ item | map(attribute='name') | join('+') }}"
        outputs: {batches: "{{ steps.s.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"batches": ["a+b", "c"]}


def test_output_is_the_count_without_collect_and_metrics_are_emitted(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {items: [a, b, c]}
              steps:
                - run: echo {{ item }}
        outputs: {count: "{{ steps.s.output }}"}
        """
    )
    assert summary.outputs == {"count": 3}
    final = flow.events(summary.run_id, "stream.metrics")[-1]["data"]
    assert final["items"] == 3 and final["final"] is True


def test_a_failing_item_fails_the_stream_and_the_command_is_stopped(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {run: "for i in 1 2 3 4 5 6 7 8; do echo $i; done; sleep 30"}
              steps:
                - run: test {{ item }} -lt 3
        """
    )
    assert summary.status == "failed"
    assert summary.error is not None and "exit code 1" in summary.error


def test_resume_continues_after_the_last_finished_item(flow: Flow) -> None:
    flow.write("items.txt", "".join(f"i{n}\n" for n in range(6)))
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {file: items.txt}
              steps:
                - run: echo {{ item }} >> log
                - run: test {{ item }} != i3 || test -f marker
        """
    )
    assert summary.status == "failed"
    assert flow.log()["i3"] == 1
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    log = flow.log()
    assert all(log[f"i{n}"] == 1 for n in (0, 1, 2)), log
    assert log["i3"] == 1 and log["i4"] == 1 and log["i5"] == 1  # i3 echoed before it failed: restored


def test_a_command_source_line_longer_than_the_reader_buffer_is_one_item(flow: Flow) -> None:
    flow.write("long.sh", "head -c 3000000 /dev/zero | tr '\\0' q; echo; echo short\n")
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {run: sh long.sh}
              collect: true
              steps:
                - {id: size, python: {call: "builtins:str", with: {object: "{{ item | length }}"}}}
        outputs: {sizes: "{{ steps.s.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"sizes": ["3000000", "5"]}


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        (
            "rows.jsonl",
            b'{"n": 1}\n' + b"[" * 5000 + b"]" * 5000 + b"\n",
            "line 2 is not valid JSON (nested too deeply)",
        ),
        (
            "rows.jsonl",
            b"1" * 5000 + b"\n",
            "line 1 is not valid JSON (Exceeds the limit (4300 digits) for integer string conversion)",
        ),
        (
            "rows.csv",
            b"a,b\n" + b"x" * 200_000 + b",1\n",
            "line 2 is not valid CSV (field larger than field limit (131072))",
        ),
    ],
    ids=["deep-json", "long-integer", "huge-csv-field"],
)
def test_a_hostile_file_line_fails_the_stream_naming_the_line(flow: Flow, name: str, data: bytes, error: str) -> None:
    (flow.root / name).write_bytes(data)
    summary = flow.run(
        f"""
        steps:
          - id: s
            stream:
              from: {{file: {name}}}
              format: {name.rpartition(".")[2]}
              steps:
                - run: echo
        """
    )
    assert (summary.status, summary.error) == ("failed", f"stream 's': {error}")


def test_bytes_of_a_file_source_that_are_not_utf8_are_replaced_as_in_command_output(flow: Flow) -> None:
    (flow.root / "rows.txt").write_bytes(b"ok\n\xff\xfeend\n")
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {file: rows.txt}
              collect: true
              steps:
                - run: printf '%s' "{{ item }}"
        outputs: {lines: "{{ steps.s.output }}"}
        """
    )
    assert (summary.status, summary.outputs) == ("succeeded", {"lines": ["ok", "\ufffd\ufffdend"]}), summary.error


def test_items_setting_one_variable_differently_are_told_what_a_stream_offers(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {items: [1, 2]}
              steps:
                - set: {last: "{{ item }}"}
        """
    )
    assert summary.status == "failed"
    assert summary.error == (
        "'s': item 0 and item 1 both set vars.last to different values "
        "(a stream has no merge policy: keep per-item values in its output, with collect: true)"
    )


def test_approvals_in_stream_items_pause_after_the_other_items_and_list_every_path(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {items: [a, b, c, d]}
              concurrency: 4
              collect: true
              steps:
                - {id: ask, if: "item in ['a', 'c']", approval: 'ok {{ item }}?'}
                - {id: nap, if: "item == 'd'", wait: 30ms}
                - {id: work, run: 'echo {{ item }} >> log; echo {{ item }}'}
          - {id: end, run: echo end >> log}
        outputs: {items: "{{ steps.s.output }}"}
        """
    )
    assert summary.status == "waiting"
    assert summary.waiting_for == ["s[0]/ask", "s[2]/ask"]
    assert flow.log() == {"b": 1, "d": 1}  # the items that need no approval were not cancelled by the pause
    resumed = flow.resume(summary.run_id, approve=True)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"items": ["a", "b", "c", "d"]}
    assert flow.log() == {"a": 1, "b": 1, "c": 1, "d": 1, "end": 1}


def test_a_stream_from_a_model_fails_saying_it_is_not_available(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: s
            stream:
              from: {llm: {model: mock/echo, prompt: hi}}
              steps: [{run: echo}]
        """
    )
    assert summary.status == "failed"
    assert summary.error == "stream 's': streaming from 'llm' is not available in this version of llmflow"


@pytest.mark.parametrize(
    ("source", "form"),
    [
        pytest.param("{run: 'echo one; exit 3'}", "lines", id="failing-command"),
        pytest.param("{file: rows.jsonl}", "jsonl", id="bad-jsonl-line"),
        pytest.param("{file: missing.txt}", "lines", id="missing-file"),
    ],
)
def test_a_failing_source_names_the_stream_instance_in_its_error(flow: Flow, source: str, form: str) -> None:
    flow.write("rows.jsonl", '{"n": 1}\nnot json\n')
    summary = flow.run(
        f"""
        steps:
          - id: l
            loop:
              times: 2
              steps:
                - id: t
                  try:
                    - id: s
                      stream:
                        from: {source}
                        format: {form}
                        steps: [{{run: echo}}]
                  catch:
                    - run: echo "{{{{ error.step }}}}"
        outputs: {{steps: "{{{{ steps.l.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"steps": ["l[0]/t/try/s", "l[1]/t/try/s"]}
