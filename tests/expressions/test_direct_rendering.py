"""Templates of plain ``{{ path }}`` outputs render without Jinja, exactly as the sandbox renders them; anything
else goes to Jinja, with the same result or the same error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from llmflow.errors import ExpressionError
from llmflow.expressions import direct
from llmflow.expressions.shell import compile_shell
from llmflow.expressions.templates import compile_template


class Lazy(Mapping[str, Any]):
    """A mapping that is not a dict (as ``steps`` is)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


CONTEXT: dict[str, Any] = {
    "inputs": {"who": "wörld", "n": 3, "ratio": 0.5, "flag": True, "off": False, "nothing": None, "text": "a b"},
    "vars": {
        "items": [1, "two", {"three": 3}],
        "obj": {"k k": "spaced", "nested": {"deep": ["x"]}, "ü": "ünï"},
        "empty": {},
        "pair": (1, 2),
        "quote": 'it\'s "quoted" $HOME `x`',
        "lines": "one\ntwo\n",
    },
    "steps": Lazy({"fetch": {"output": "fetched", "status": "succeeded"}}),
    "item": {"name": "first"},
}

DIRECT = [
    "hello {{ inputs.who }}",
    "{{inputs.who}}!",
    "{{   inputs.n   }} items at {{ inputs.ratio }}",
    "{{ inputs.flag }}/{{ inputs.off }}/{{ inputs.nothing }}.",
    "{{ vars.items }}",
    " {{ vars.obj }} ",
    "list: {{ vars.items }} and {{ vars.pair }}",
    "{{ vars.items[1] }} {{ vars.items[2].three }} {{ vars.items[2]['three'] }}",
    "{{ vars.obj['k k'] }} {{ vars.obj[\"ü\"] }} {{ vars.obj.nested.deep[0] }}",
    "{{ vars.empty }}",
    "first line\n{{ inputs.who }}\n\nlast {{ steps.fetch.output }}\n",
    "}} stray closing and { single {{ inputs.n }}",
    "{{ vars.quote }}",
    "{{ vars.lines }}",
    "{{ steps.fetch }}",
    "{{ item.name }}",
    "{{ inputs.n }}",
    "{{ inputs.nothing }}",
]

JINJA_ONLY = [
    "{{ inputs.who | upper }}",
    "{{- inputs.who }}",
    "{{ inputs.who -}}",
    "{{ inputs.missing }}",
    "{{ nobody.here }}",
    "{{ inputs.who.upper }}",
    "{{ inputs.text[0] }}",
    "{{ vars.items['a'] }}",
    "{{ vars.items[9] }}",
    "{{ vars.items[01] }}",
    "{{ vars.empty.items }}",
    "{{ range }}",
    "{{ self }}",
    "{{ inputs.n + 1 }}",
    "{{ true }}",
    "windows\r\n{{ inputs.who }}",
    "{% if inputs.flag %}yes{% endif %}",
    "{# note #}{{ inputs.who }}",
]


def rendered(render: Any, *arguments: Any) -> tuple[str, Any]:
    try:
        return "value", render(*arguments)
    except ExpressionError as error:
        return "error", str(error)


def with_jinja(monkeypatch: pytest.MonkeyPatch, render: Any, *arguments: Any) -> tuple[str, Any]:
    with monkeypatch.context() as patched:
        patched.setattr(direct, "render", lambda *_, **__: direct.JINJA)
        return rendered(render, *arguments)


@pytest.mark.parametrize("source", DIRECT)
def test_plain_outputs_render_directly_as_jinja_renders_them(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    template = compile_template(source)
    assert direct.render(source, CONTEXT, native=template.native) is not direct.JINJA
    expected = with_jinja(monkeypatch, template.render, CONTEXT)
    assert rendered(template.render, CONTEXT) == expected
    value = expected[1]
    assert type(value) is type(rendered(template.render, CONTEXT)[1])


@pytest.mark.parametrize("source", JINJA_ONLY)
def test_everything_else_is_left_to_jinja(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    template = compile_template(source)
    assert direct.render(source, CONTEXT, native=template.native) is direct.JINJA
    assert rendered(template.render, CONTEXT) == with_jinja(monkeypatch, template.render, CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        'echo "hello {{ inputs.who }}"',
        "printf '%s\\n' {{ vars.quote }} {{ inputs.n }}",
        'echo "{{ vars.items }}" "{{ vars.quote }}" "{{ vars.quote }}"',
        'cat <<EOF\n{{ vars.lines }}\nEOF\necho "{{ steps.fetch.output }}"',
        'echo "{{ inputs.who | upper }}"',
        'echo "{{ inputs.missing }}"',
    ],
)
def test_shell_commands_render_directly_as_jinja_renders_them(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    template = compile_shell(source)

    def command(context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        done = template.render(context)
        return done.script, dict(done.env)

    assert rendered(command, CONTEXT) == with_jinja(monkeypatch, command, CONTEXT)


def test_a_run_of_plain_templates_does_not_import_jinja(tmp_path: Any) -> None:
    code = (
        "import sys; from llmflow.expressions.templates import compile_template; "
        "from llmflow.expressions.shell import compile_shell; "
        "context = {'inputs': {'who': 'you'}, 'vars': {'n': [1]}}; "
        "print(compile_template('hi {{ inputs.who }} {{ vars.n }}').render(context), "
        "compile_shell('echo \"{{ inputs.who }}\"').render(context).script, 'jinja2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == 'hi you [1] echo "${LLMFLOW_V1}" False'
