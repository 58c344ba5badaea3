"""Tests of schemas/workflow.schema.json itself: well formed, documented, closed and right about the language.

These check the schema file directly with ``jsonschema.Draft202012Validator``; the friendly messages built on
top of it are the validator module's business and are tested with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "workflow.schema.json"
EXAMPLES_DIR = ROOT / "examples"

KIND_KEYS = (
    "run", "llm", "http", "python", "set", "write", "wait", "approval", "fail", "emit",
    "memory", "action", "workflow", "steps", "switch", "then", "loop", "parallel", "map", "stream", "try",
)  # fmt: skip
COMMON_KEYS = (
    "id", "name", "description", "if", "timeout", "retry", "continue_on_error", "cache", "compensate", "env",
)  # fmt: skip
HOOK_ACTIONS = ("run", "http", "python", "write", "emit", "action")

# Object schemas that are free-form on purpose (JSON pointers into the schema file), and why.
FREE_FORM = {
    "/properties/vars": "run variables hold any values",
    "/properties/outputs": "output values are any values or templates",
    "/$defs/set_node/properties/set": "assigned values are any values (names are checked)",
    "/$defs/python_call/properties/with": "keyword arguments of a user function",
    "/$defs/python_with": "keyword arguments of a user function",
    "/$defs/workflow_node/properties/with": "inputs of another workflow, checked against its own inputs",
    "/$defs/action_with": "the configuration of an action a plugin registers",
    "/$defs/emit_event/properties/data": "an event payload",
    "/$defs/http_request/properties/headers": "HTTP headers",
    "/$defs/http_request/properties/params": "query parameters",
    "/$defs/llm_call/properties/schema": "a JSON Schema of its own",
    "/$defs/memory_node/properties/memory/properties/metadata": "user metadata",
    "/$defs/memory_node/properties/memory/properties/where": "a filter on user metadata",
    "/$defs/model/properties/options": "provider-specific options",
    "/$defs/node": "closed by the <kind>_node def its kind key selects",
    "/$defs/hook": "closed by the <action>_hook def its action key selects",
}

# Keywords whose value is a schema, a list of schemas, or a mapping of name -> schema.
_SCHEMA_KEYWORDS = (
    "additionalProperties", "unevaluatedProperties", "items", "contains", "propertyNames",
    "if", "then", "else", "not",
)  # fmt: skip
_SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "dependentSchemas")

_yaml = YAML(typ="safe")


def _load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


SCHEMA = _load_schema()
VALIDATOR = Draft202012Validator(SCHEMA)


def _subschemas(schema: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object in the file with its JSON pointer, the root first."""
    if not isinstance(schema, dict):
        return
    yield pointer, schema
    for keyword in _SCHEMA_KEYWORDS:
        if keyword in schema:
            yield from _subschemas(schema[keyword], f"{pointer}/{keyword}")
    for keyword in _SCHEMA_LIST_KEYWORDS:
        for index, item in enumerate(schema.get(keyword, ())):
            yield from _subschemas(item, f"{pointer}/{keyword}/{index}")
    for keyword in _SCHEMA_MAP_KEYWORDS:
        for name, item in schema.get(keyword, {}).items():
            yield from _subschemas(item, f"{pointer}/{keyword}/{name}")


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The def ``schema`` references (``schema`` itself when it has no ``$ref``)."""
    if "$ref" not in schema:
        return schema
    ref = schema["$ref"]
    assert ref.startswith("#/$defs/"), f"only local $defs references are used, not {ref!r}"
    target: dict[str, Any] = SCHEMA["$defs"][ref.removeprefix("#/$defs/")]
    return target


def _description(schema: dict[str, Any]) -> str:
    """The description an editor shows for ``schema``: its own, else its ``$ref`` target's."""
    seen = 0
    while not schema.get("description") and "$ref" in schema and seen < 10:
        schema = _resolve(schema)
        seen += 1
    return str(schema.get("description", "")).strip()


def _types(schema: dict[str, Any]) -> set[str]:
    value = schema.get("type", [])
    return {value} if isinstance(value, str) else set(value)


def _all_errors(errors: Any) -> Iterator[ValidationError]:
    for error in errors:
        yield error
        yield from _all_errors(error.context or ())


# ----------------------------------------------------------------------------------------- the file itself


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == "https://llmflow.dev/schemas/workflow.schema.json"
    assert SCHEMA["title"]
    assert SCHEMA["description"]


def test_schema_file_is_readable_json_with_two_space_indent() -> None:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines()}
    assert all(indent % 2 == 0 for indent in indents)
    assert "\t" not in text


def test_every_property_has_a_description() -> None:
    missing = [
        f"{pointer}/properties/{name}"
        for pointer, schema in _subschemas(SCHEMA)
        for name, prop in schema.get("properties", {}).items()
        if not _description(prop)
    ]
    assert missing == []


def test_every_def_has_a_description() -> None:
    missing = [name for name, schema in SCHEMA["$defs"].items() if not _description(schema)]
    assert missing == []


def test_objects_with_properties_are_closed() -> None:
    open_objects = [
        pointer
        for pointer, schema in _subschemas(SCHEMA)
        if "properties" in schema
        and schema.get("additionalProperties") is not False
        and schema.get("unevaluatedProperties") is not False
        and pointer not in FREE_FORM
    ]
    assert open_objects == []


def test_objects_without_properties_are_typed_maps_or_allowed_free_form() -> None:
    # A mapping is either closed (above, or by the def it references), a map whose values have a schema
    # (`inputs`, `branches`, `env` ...), or free-form on purpose and listed in FREE_FORM.
    unexplained = [
        pointer
        for pointer, schema in _subschemas(SCHEMA)
        if "object" in _types(schema)
        and "properties" not in schema
        and "additionalProperties" not in schema
        and _resolve(schema).get("additionalProperties") is not False
        and pointer not in FREE_FORM
    ]
    assert unexplained == []


def test_free_form_allow_list_has_no_stale_entries() -> None:
    pointers = {pointer for pointer, _ in _subschemas(SCHEMA)}
    assert sorted(set(FREE_FORM) - pointers) == []


def test_every_reference_resolves_and_every_def_is_used() -> None:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    used = set()
    for _, schema in _subschemas(SCHEMA):
        if "$ref" in schema:
            _resolve(schema)
            used.add(schema["$ref"].removeprefix("#/$defs/"))
    assert used <= set(SCHEMA["$defs"])
    unused = sorted(name for name in SCHEMA["$defs"] if name not in used)
    assert unused == [], f"unused $defs: {unused}"
    assert '"$dynamicRef"' not in text


def test_node_dispatch_is_one_if_then_per_kind_key() -> None:
    node = SCHEMA["$defs"]["node"]
    assert node["type"] == "object"
    assert not {"oneOf", "anyOf", "additionalProperties", "unevaluatedProperties"} & set(node)
    assert node["allOf"] == [
        {"if": {"required": [kind]}, "then": {"$ref": f"#/$defs/{kind}_node"}} for kind in KIND_KEYS
    ]


@pytest.mark.parametrize("kind", KIND_KEYS)
def test_each_kind_def_lists_common_keys_and_is_closed(kind: str) -> None:
    definition = SCHEMA["$defs"][f"{kind}_node"]
    assert definition["additionalProperties"] is False
    assert kind in definition["required"]
    properties = definition["properties"]
    assert set(COMMON_KEYS) <= set(properties)
    for key in COMMON_KEYS:
        assert properties[key] == {"$ref": f"#/$defs/common_{key}"}
    other_kinds = (set(KIND_KEYS) - {kind}) & set(properties)
    # A kind def never allows a second kind key beside its own.
    assert other_kinds == set()


def test_hook_dispatch_is_one_if_then_per_action() -> None:
    hook = SCHEMA["$defs"]["hook"]
    assert hook["allOf"] == [
        {"if": {"required": [action]}, "then": {"$ref": f"#/$defs/{action}_hook"}} for action in HOOK_ACTIONS
    ]
    for action in HOOK_ACTIONS:
        definition = SCHEMA["$defs"][f"{action}_hook"]
        assert definition["additionalProperties"] is False
        assert definition["required"] == [action]


def test_patterns_match_the_documented_names() -> None:
    defs = SCHEMA["$defs"]
    assert defs["identifier"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"
    assert defs["step_id"]["pattern"] == "^[a-z][a-z0-9_-]*$"
    assert defs["step_id"]["maxLength"] == 64
    assert defs["duration"]["pattern"] == r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"


# ----------------------------------------------------------------------------------------- snippets


def _workflow(steps_yaml: str | None = None, /, **top: Any) -> dict[str, Any]:
    """A minimal valid workflow, with its steps (YAML text of the list) and top-level keys replaced."""
    document: dict[str, Any] = {"version": 1, "name": "snippet", "steps": [{"run": "echo hi"}]}
    if steps_yaml is not None:
        document["steps"] = _yaml.load(steps_yaml)
    document.update(top)
    return document


def _top(text: str) -> dict[str, Any]:
    """A minimal workflow with the top-level keys given as YAML text."""
    return _workflow(**_yaml.load(text))


GOOD: list[tuple[str, dict[str, Any]]] = [
    # leaf actions
    ("run-string", _workflow("[{run: 'ls -1 data | sort', parse: lines}]")),
    ("run-argv", _workflow("[{run: [wc, -l, a.txt], cwd: data, shell: bash, stdin: '{{ inputs.text }}'}]")),
    ("run-parse-json", _workflow("[{run: cat data.json, parse: json}]")),
    ("llm-string", _workflow("[{llm: 'Summarize {{ steps.read.output }}'}]")),
    (
        "llm-object",
        _workflow(
            """
            - id: classify
              llm:
                model: fast
                system: You label issues.
                prompt: "{{ inputs.text }}"
                temperature: 0.2
                max_tokens: "{{ inputs.budget }}"
                stop: ["\\n\\n", END]
                schema: {type: object, required: [label], properties: {label: {enum: [bug, feature]}}}
                repair_attempts: 2
                stream: true
                history: support-chat
                fallback: [openai/gpt-4o-mini, mock/echo]
                timeout: 90s
            """
        ),
    ),
    (
        "llm-messages",
        _workflow(
            """
            - llm:
                messages:
                  - {role: system, content: Be brief.}
                  - {role: user, content: "{{ inputs.question }}"}
            """
        ),
    ),
    ("http-string", _workflow("[{http: 'http://127.0.0.1:8080/health'}]")),
    (
        "http-object",
        _workflow(
            """
            - http:
                url: "http://127.0.0.1:{{ inputs.port }}/items"
                method: POST
                headers: {Authorization: "Bearer {{ secrets.TOKEN }}"}
                params: {limit: 10}
                json: {name: "{{ inputs.name }}", tags: [a, b]}
                expect: [200, 201]
                timeout: 5s
                parse: auto
            """
        ),
    ),
    ("http-body-expect-int", _workflow("[{http: {url: 'http://x', method: PUT, body: text, expect: 204}}]")),
    ("python-string", _workflow("[{python: 'helpers:word_count', with: {text: hi}}]")),
    ("python-object", _workflow("[{python: {call: 'pkg.mod:fn', with: {n: 3}}}]")),
    ("set", _workflow("[{set: {count: 1, items: [a, b], label: '{{ inputs.x }}'}, scope: session}]")),
    ("write", _workflow("[{write: {path: out/a.md, content: '# A', artifact: true, append: false}}]")),
    ("wait-string", _workflow("[{wait: 1h30m}]")),
    ("wait-milliseconds", _workflow("[{wait: 500ms}]")),
    ("wait-number", _workflow("[{wait: 2.5}]")),
    ("approval-string", _workflow("[{approval: 'Publish the report?'}]")),
    ("approval-object", _workflow("[{approval: {message: 'Publish {{ inputs.name }}?', timeout: 24h}}]")),
    ("fail-string", _workflow("[{fail: No files found}]")),
    ("fail-object", _workflow("[{fail: {message: No files found}}]")),
    ("emit-string", _workflow("[{emit: report.ready}]")),
    ("emit-object", _workflow("[{emit: {event: ticket.escalated, data: {id: '{{ inputs.id }}'}}}]")),
    ("memory-add", _workflow("[{memory: {collection: notes, add: [a, b], metadata: {source: x}, id: n1}}]")),
    ("memory-search", _workflow("[{memory: {collection: notes, search: due, k: 3, where: {source: x}}}]")),
    ("workflow", _workflow("[{workflow: lib/normalize.yaml, with: {text: hi}}]")),
    ("action", _workflow("[{id: loud, action: shout, with: {text: 'hi {{ inputs.name }}', n: 3}, retry: 2}]")),
    ("action-without-with", _workflow("[{action: my_team.notify-v2}]")),
    # patterns
    ("group", _workflow("[{id: prepare, steps: [{run: mkdir -p out}, {run: date}]}]")),
    (
        "switch",
        _workflow(
            """
            - id: route
              switch:
                cases:
                  - {name: bug, when: "steps.classify.output.label == 'bug'", steps: [{run: echo bug}]}
                  - {when: true, steps: [{run: echo other}]}
                default: [{run: echo default}]
            """
        ),
    ),
    (
        "if-then-else",
        _workflow(
            """
            - id: route
              if: steps.score.output > 0.8
              then: [{run: echo high}]
              else: [{run: echo low}]
            """
        ),
    ),
    ("if-then-only", _workflow("[{if: true, then: [{run: echo yes}]}]")),
    ("if-on-leaf", _workflow("[{if: inputs.verbose, run: echo verbose}]")),
    (
        "loop-for-each",
        _workflow("[{loop: {for_each: '{{ steps.ls.output }}', as: file, steps: [{run: ls}]}}]"),
    ),
    ("loop-for-each-list", _workflow("[{loop: {for_each: [a, b], steps: [{run: echo}]}}]")),
    ("loop-times", _workflow("[{loop: {times: '{{ inputs.n }}', steps: [{run: echo}]}}]")),
    ("loop-while", _workflow("[{loop: {while: vars.left > 0, max_iterations: 10, steps: [{run: echo}]}}]")),
    ("loop-until", _workflow("[{loop: {until: \"'OK' in vars.verdict\", steps: [{run: echo}]}}]")),
    (
        "parallel",
        _workflow(
            """
            - parallel:
                concurrency: 2
                fail_fast: false
                merge: list
                branches: {security: [{run: echo a}], style: [{run: echo b}]}
            """
        ),
    ),
    (
        "map-percent",
        _workflow(
            """
            - map:
                items: "{{ steps.fetch.output }}"
                as: issue
                concurrency: 4
                fail_fast: false
                tolerated_failures: 10%
                steps: [{run: echo}]
            """
        ),
    ),
    (
        "map-count",
        _workflow("[{map: {items: [1, 2], tolerated_failures: 2, steps: [{run: echo}]}}]"),
    ),
    (
        "stream-file",
        _workflow(
            """
            - stream:
                from: {file: data/rows.jsonl}
                format: jsonl
                buffer: 100
                batch: 10
                concurrency: 4
                collect: true
                as: row
                steps: [{run: echo}]
            """
        ),
    ),
    ("stream-run", _workflow("[{stream: {from: {run: [cat, log.txt]}, steps: [{run: echo}]}}]")),
    (
        "stream-items",
        _workflow("[{stream: {from: {items: '{{ vars.rows }}'}, format: csv, steps: [{run: x}]}}]"),
    ),
    ("stream-llm", _workflow("[{stream: {from: {llm: {prompt: List ideas}}, steps: [{run: echo}]}}]")),
    (
        "try-catch-finally",
        _workflow(
            """
            - id: guarded
              try: [{run: "false"}]
              catch: [{run: echo caught}]
              finally: [{run: echo done}]
            """
        ),
    ),
    ("try-only", _workflow("[{try: [{run: 'false'}]}]")),
    # keys every node may have
    (
        "common-keys",
        _workflow(
            """
            - id: fetch-issues_2
              name: Fetch issues
              description: Lists open issues.
              if: inputs.enabled
              run: echo
              timeout: 2m
              retry: {attempts: 3, delay: 1s, backoff: 2, max_delay: 30s, jitter: true, on: [command]}
              continue_on_error: true
              cache: true
              compensate: [{run: echo undo}]
              env: {LC_ALL: C, TOKEN: "{{ secrets.TOKEN }}"}
            """
        ),
    ),
    ("retry-shorthand", _workflow("[{run: echo, retry: 3}]")),
    ("retry-jitter-fraction", _workflow("[{run: echo, retry: {attempts: 2, jitter: 0.25, on: [any]}}]")),
    ("timeout-seconds", _workflow("[{run: echo, timeout: 30}]")),
    # top-level keys
    ("top-description", _top("description: Label new issues")),
    (
        "top-inputs",
        _top(
            """
            inputs:
              topic: string
              limit: {type: integer, default: 20, minimum: 1, maximum: 100}
              repo: {type: string, description: owner/name, pattern: '^[^/]+/[^/]+$', min_length: 3}
              tone: {enum: [formal, casual], default: casual}
              tags: {type: array, items: {type: string}, required: false}
              token: {type: string, secret: true, max_length: 200}
              options: {type: object, default: {}}
            """
        ),
    ),
    ("top-vars", _top("vars: {count: 0, seen: [], config: {deep: true}}")),
    (
        "top-models",
        _top(
            """
            models:
              fast: openai/gpt-4o-mini
              careful: {model: anthropic/claude-sonnet-4-5, temperature: 0, max_tokens: 2000}
              local:
                model: openai/llama3
                base_url: http://localhost:11434/v1
                api_key_env: OLLAMA_KEY
                fallback: [fast]
              scripted: {model: mock/scripted, options: {replies: ['{"label": "bug"}']}}
            """
        ),
    ),
    ("top-defaults", _top("defaults: {model: fast, timeout: 2m, retry: {attempts: 3}, shell: bash}")),
    (
        "top-limits",
        _top("limits: {max_concurrency: 8, max_iterations: 99, timeout: 1h, max_tokens: 9000, max_cost: 2.5}"),
    ),
    ("top-secrets", _top("secrets: [GITHUB_TOKEN, OPENAI_API_KEY]")),
    ("top-env", _top("env: {LC_ALL: C}")),
    (
        "top-hooks",
        _top(
            """
            hooks:
              - id: notify
                name: Notify
                on: step.failed
                steps: "label*"
                if: true
                required: true
                run: echo failed
                parse: text
                cwd: .
                shell: sh
              - {on: [run.completed, run.failed], http: {url: 'http://127.0.0.1:9/x', json: {ok: true}}}
              - {on: 'step.*', steps: [fetch, 'label*'], python: 'hooks:record', with: {level: info}}
              - {on: run.completed, write: {path: out/done.txt, content: done}}
              - {on: step.failed, emit: {event: alert.raised, data: {severity: high}}}
              - {on: step.completed, steps: fetch, action: shout, with: {text: "{{ event.path }}"}}
            """
        ),
    ),
    ("top-plugins", _top("plugins: [./hooks.py, plugins/extra.py]")),
    ("top-outputs", _top("outputs: {labels: '{{ steps.label.output }}', count: 3, nested: {a: 1}}")),
]

BAD: list[tuple[str, dict[str, Any], str]] = [
    # the document
    ("version-2", _workflow(version=2), "const"),
    ("version-string", _workflow(version="1"), "const"),
    ("missing-name", {"version": 1, "steps": [{"run": "echo"}]}, "required"),
    ("missing-steps", {"version": 1, "name": "x"}, "required"),
    ("bad-name", _workflow(name="My Flow"), "pattern"),
    ("unknown-top-key", _workflow(stpes=[]), "additionalProperties"),
    ("steps-null", _workflow(steps=None), "type"),
    ("steps-empty", _workflow(steps=[]), "minItems"),
    ("step-not-a-mapping", _workflow(steps=["echo hi"]), "type"),
    # keys every node may have
    ("bad-id-uppercase", _workflow("[{id: Fetch, run: echo}]"), "pattern"),
    ("bad-id-digit-first", _workflow("[{id: 1fetch, run: echo}]"), "pattern"),
    ("bad-id-too-long", _workflow(f"[{{id: {'a' * 65}, run: echo}}]"), "maxLength"),
    ("misspelt-common-key", _workflow("[{run: echo, timout: 5s}]"), "additionalProperties"),
    ("bad-timeout", _workflow("[{run: echo, timeout: soon}]"), "pattern"),
    ("negative-timeout", _workflow("[{run: echo, timeout: -1}]"), "minimum"),
    ("retry-zero", _workflow("[{run: echo, retry: 0}]"), "minimum"),
    ("retry-attempts-zero", _workflow("[{run: echo, retry: {attempts: 0}}]"), "minimum"),
    ("retry-unknown-on", _workflow("[{run: echo, retry: {on: [network]}}]"), "enum"),
    ("retry-jitter-too-big", _workflow("[{run: echo, retry: {jitter: 2}}]"), "maximum"),
    ("retry-misspelt", _workflow("[{run: echo, retry: {attempt: 2}}]"), "additionalProperties"),
    ("continue-on-error-string", _workflow("[{run: echo, continue_on_error: yes please}]"), "type"),
    ("compensate-empty", _workflow("[{run: echo, compensate: []}]"), "minItems"),
    ("env-bad-name", _workflow("[{run: echo, env: {BAD-NAME: x}}]"), "pattern"),
    ("env-number-value", _workflow("[{run: echo, env: {PORT: 8080}}]"), "type"),
    # run
    ("run-number", _workflow("[{run: 42}]"), "type"),
    ("run-empty-argv", _workflow("[{run: []}]"), "minItems"),
    ("run-argv-number", _workflow("[{run: [head, -n, 5]}]"), "type"),
    ("run-bad-parse", _workflow("[{run: echo, parse: xml}]"), "enum"),
    ("run-bad-shell", _workflow("[{run: echo, shell: zsh}]"), "enum"),
    ("run-sibling-on-llm", _workflow("[{llm: hi, stdin: x}]"), "additionalProperties"),
    # llm
    ("llm-misspelt-key", _workflow("[{llm: {promt: hi}}]"), "additionalProperties"),
    ("llm-no-prompt", _workflow("[{llm: {model: fast}}]"), "anyOf"),
    ("llm-empty-string", _workflow("[{llm: ''}]"), "minLength"),
    ("llm-temperature-word", _workflow("[{llm: {prompt: hi, temperature: hot}}]"), "pattern"),
    ("llm-temperature-high", _workflow("[{llm: {prompt: hi, temperature: 3}}]"), "maximum"),
    ("llm-repair-too-many", _workflow("[{llm: {prompt: hi, repair_attempts: 11}}]"), "maximum"),
    ("llm-bad-role", _workflow("[{llm: {messages: [{role: robot, content: hi}]}}]"), "enum"),
    ("llm-schema-string", _workflow("[{llm: {prompt: hi, schema: object}}]"), "type"),
    # http
    ("http-lowercase-method", _workflow("[{http: {url: 'http://x', method: get}}]"), "enum"),
    ("http-no-url", _workflow("[{http: {method: GET}}]"), "required"),
    ("http-bad-expect", _workflow("[{http: {url: 'http://x', expect: 42}}]"), "minimum"),
    ("http-bad-parse", _workflow("[{http: {url: 'http://x', parse: xml}}]"), "enum"),
    # python, set, write, wait, approval, fail, emit
    ("python-dotted", _workflow("[{python: helpers.word_count}]"), "pattern"),
    ("python-object-no-call", _workflow("[{python: {with: {a: 1}}}]"), "required"),
    ("set-bad-name", _workflow("[{set: {bad-name: 1}}]"), "pattern"),
    ("set-empty", _workflow("[{set: {}}]"), "minProperties"),
    ("set-bad-scope", _workflow("[{set: {a: 1}, scope: global}]"), "enum"),
    ("write-no-path", _workflow("[{write: {content: hi}}]"), "required"),
    ("write-string", _workflow("[{write: out.txt}]"), "type"),
    ("wait-words", _workflow("[{wait: 5 minutes}]"), "pattern"),
    ("wait-negative", _workflow("[{wait: -1}]"), "minimum"),
    ("approval-no-message", _workflow("[{approval: {timeout: 1h}}]"), "required"),
    ("fail-number", _workflow("[{fail: 1}]"), "type"),
    ("emit-reserved-step", _workflow("[{emit: step.done}]"), "not"),
    ("emit-reserved-run-object", _workflow("[{emit: {event: run.finished}}]"), "not"),
    ("emit-bad-name", _workflow("[{emit: Report Ready}]"), "pattern"),
    ("emit-no-event", _workflow("[{emit: {data: {a: 1}}}]"), "required"),
    # memory, workflow
    ("memory-no-collection", _workflow("[{memory: {add: hi}}]"), "required"),
    ("memory-add-and-search", _workflow("[{memory: {collection: c, add: a, search: b}}]"), "oneOf"),
    ("memory-neither", _workflow("[{memory: {collection: c}}]"), "oneOf"),
    ("memory-k-without-search", _workflow("[{memory: {collection: c, add: a, k: 3}}]"), "dependentRequired"),
    ("workflow-with-list", _workflow("[{workflow: lib/x.yaml, with: [a]}]"), "type"),
    # action
    ("action-number", _workflow("[{action: 12}]"), "type"),
    ("action-null", _workflow("[{action: null, with: {a: 1}}]"), "type"),
    ("action-bad-name", _workflow("[{action: 'shout loud'}]"), "pattern"),
    ("action-digit-first", _workflow("[{action: 1shout}]"), "pattern"),
    ("action-with-list", _workflow("[{action: shout, with: [a]}]"), "type"),
    ("action-unknown-key", _workflow("[{action: shout, text: hi}]"), "additionalProperties"),
    ("action-beside-run", _workflow("[{action: shout, run: echo}]"), "additionalProperties"),
    # patterns
    ("group-null", _workflow("[{steps: null}]"), "type"),
    ("switch-no-cases", _workflow("[{switch: {default: [{run: echo}]}}]"), "required"),
    ("switch-empty-cases", _workflow("[{switch: {cases: []}}]"), "minItems"),
    ("switch-case-no-when", _workflow("[{switch: {cases: [{steps: [{run: echo}]}]}}]"), "required"),
    (
        "switch-case-bad-name",
        _workflow("[{switch: {cases: [{name: a-b, when: x, steps: [{run: x}]}]}}]"),
        "pattern",
    ),
    ("then-without-if", _workflow("[{then: [{run: echo}]}]"), "required"),
    ("else-on-run", _workflow("[{run: echo, else: [{run: echo}]}]"), "additionalProperties"),
    ("loop-times-and-until", _workflow("[{loop: {times: 3, until: done, steps: [{run: echo}]}}]"), "oneOf"),
    ("loop-no-driver", _workflow("[{loop: {steps: [{run: echo}]}}]"), "oneOf"),
    ("loop-no-steps", _workflow("[{loop: {times: 3}}]"), "required"),
    ("loop-zero-max", _workflow("[{loop: {times: 3, max_iterations: 0, steps: [{run: x}]}}]"), "minimum"),
    ("loop-bad-as", _workflow("[{loop: {for_each: [1], as: my-item, steps: [{run: echo}]}}]"), "pattern"),
    ("parallel-no-branches", _workflow("[{parallel: {concurrency: 2}}]"), "required"),
    ("parallel-empty-branches", _workflow("[{parallel: {branches: {}}}]"), "minProperties"),
    ("parallel-bad-branch-name", _workflow("[{parallel: {branches: {bad-name: [{run: echo}]}}}]"), "pattern"),
    ("parallel-bad-merge", _workflow("[{parallel: {merge: first, branches: {a: [{run: echo}]}}}]"), "enum"),
    ("map-no-items", _workflow("[{map: {steps: [{run: echo}]}}]"), "required"),
    ("map-no-steps", _workflow("[{map: {items: [1]}}]"), "required"),
    (
        "map-bad-tolerated",
        _workflow("[{map: {items: [1], tolerated_failures: ten, steps: [{run: x}]}}]"),
        "pattern",
    ),
    ("map-bad-concurrency", _workflow("[{map: {items: [1], concurrency: 0, steps: [{run: x}]}}]"), "minimum"),
    ("stream-no-from", _workflow("[{stream: {steps: [{run: echo}]}}]"), "required"),
    ("stream-two-sources", _workflow("[{stream: {from: {file: a, run: b}, steps: [{run: x}]}}]"), "oneOf"),
    ("stream-bad-format", _workflow("[{stream: {from: {file: a}, format: xml, steps: [{run: x}]}}]"), "enum"),
    ("stream-zero-batch", _workflow("[{stream: {from: {file: a}, batch: 0, steps: [{run: x}]}}]"), "minimum"),
    ("catch-on-run", _workflow("[{run: echo, catch: [{run: echo}]}]"), "additionalProperties"),
    ("try-empty", _workflow("[{try: []}]"), "minItems"),
    # top-level keys
    ("input-bad-type", _top("inputs: {a: str}"), "enum"),
    ("input-misspelt-key", _top("inputs: {a: {type: string, defualt: x}}"), "additionalProperties"),
    ("input-bad-name", _top("inputs: {1a: string}"), "pattern"),
    ("vars-bad-name", _top("vars: {my-var: 1}"), "pattern"),
    ("model-without-provider", _top("models: {a: gpt-4o}"), "pattern"),
    ("model-object-no-model", _top("models: {a: {temperature: 0}}"), "required"),
    ("defaults-unknown-key", _top("defaults: {modle: fast}"), "additionalProperties"),
    ("limits-zero-concurrency", _top("limits: {max_concurrency: 0}"), "minimum"),
    ("secrets-lowercase", _top("secrets: [github_token]"), "pattern"),
    ("secrets-duplicate", _top("secrets: [A, A]"), "uniqueItems"),
    ("hook-no-action", _top("hooks: [{on: step.failed, rn: echo}]"), "anyOf"),
    ("hook-no-on", _top("hooks: [{run: echo}]"), "required"),
    ("hook-with-on-run", _top("hooks: [{on: step.failed, run: echo, with: {a: 1}}]"), "additionalProperties"),
    ("hook-llm-action", _top("hooks: [{on: step.failed, llm: hi}]"), "anyOf"),
    ("hook-action-number", _top("hooks: [{on: step.failed, action: 3}]"), "type"),
    ("hook-action-unknown-key", _top("hooks: [{on: step.failed, action: shout, retry: 2}]"), "additionalProperties"),
    ("plugins-string", _top("plugins: ./hooks.py"), "type"),
    ("outputs-bad-name", _top("outputs: {bad-name: 1}"), "pattern"),
]


@pytest.mark.parametrize(("document"), [case[1] for case in GOOD], ids=[case[0] for case in GOOD])
def test_good_snippet_validates(document: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(("document", "keyword"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_snippet_fails(document: dict[str, Any], keyword: str) -> None:
    errors = list(VALIDATOR.iter_errors(document))
    assert errors, "expected the snippet to be invalid"
    keywords = {error.validator for error in _all_errors(errors)}
    assert keyword in keywords, f"expected a {keyword!r} error, got {sorted(map(str, keywords))}"


def test_snippet_tables_have_unique_ids() -> None:
    ids = [case[0] for case in GOOD] + [case[0] for case in BAD]
    assert len(ids) == len(set(ids))


def test_good_snippets_cover_every_kind_key() -> None:
    kinds = set()
    for _, document in GOOD:
        kinds |= _kind_keys(document)
    assert kinds == set(KIND_KEYS)


# ----------------------------------------------------------------------------------------- examples

EXAMPLE_FILES = sorted(EXAMPLES_DIR.rglob("*.yaml"))


def _load_example(path: Path) -> Any:
    return _yaml.load(path.read_text(encoding="utf-8"))


def _nodes(steps: Any) -> Iterator[dict[str, Any]]:
    """Every node of a step list, nested ones included."""
    for node in steps if isinstance(steps, list) else ():
        if not isinstance(node, dict):
            continue
        yield node
        for key in ("steps", "then", "else", "try", "catch", "finally", "compensate"):
            yield from _nodes(node.get(key))
        for key in ("loop", "map", "stream"):
            body = node.get(key)
            if isinstance(body, dict):
                yield from _nodes(body.get("steps"))
        switch = node.get("switch")
        if isinstance(switch, dict):
            for case in switch.get("cases") or ():
                yield from _nodes(case.get("steps"))
            yield from _nodes(switch.get("default"))
        parallel = node.get("parallel")
        if isinstance(parallel, dict):
            for branch in (parallel.get("branches") or {}).values():
                yield from _nodes(branch)


def _kind_keys(document: dict[str, Any]) -> set[str]:
    return {key for node in _nodes(document.get("steps")) for key in node if key in KIND_KEYS}


def test_there_are_enough_examples() -> None:
    top_level = [path for path in EXAMPLE_FILES if path.parent == EXAMPLES_DIR]
    assert len(top_level) >= 7


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES_DIR)))
def test_example_validates(path: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(_load_example(path))]
    assert errors == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES_DIR)))
def test_example_points_editors_at_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    schema = Path(first_line.removeprefix("# yaml-language-server: $schema="))
    assert first_line.startswith("# yaml-language-server: $schema=")
    assert (path.parent / schema).resolve() == SCHEMA_PATH.resolve()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES_DIR)))
def test_example_inputs_all_have_defaults(path: Path) -> None:
    inputs = _load_example(path).get("inputs") or {}
    without_default = [name for name, spec in inputs.items() if not isinstance(spec, dict) or "default" not in spec]
    assert without_default == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES_DIR)))
def test_example_step_ids_are_unique(path: Path) -> None:
    ids = [node["id"] for node in _nodes(_load_example(path).get("steps")) if "id" in node]
    assert len(ids) == len(set(ids))


def test_examples_use_every_kind_key() -> None:
    used: set[str] = set()
    for path in EXAMPLE_FILES:
        used |= _kind_keys(_load_example(path))
    assert sorted(set(KIND_KEYS) - used) == []


def test_examples_use_only_offline_models() -> None:
    for path in EXAMPLE_FILES:
        for alias, model in (_load_example(path).get("models") or {}).items():
            name = model["model"] if isinstance(model, dict) else model
            assert name.startswith("mock/"), f"{path.name}: model {alias} is {name}"
