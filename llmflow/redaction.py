"""Secret values replaced by ``***`` in everything a run writes or shows (journal, run.json, events, cache)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from llmflow.compiler.graph import Workflow
    from llmflow.config import Config
    from llmflow.engine.events import Event, Sink
    from llmflow.engine.ports import RunHandle, RunStore

#: What a secret becomes.
MASK = "***"
#: API keys found by the provider settings shorter than this are placeholders (``ollama``), not secrets.
MIN_KEY_LENGTH = 8
#: The shortest value of a ``secret: true`` input that is masked wherever it appears in what a run writes.
MIN_SECRET_INPUT_LENGTH = 4
#: Lines of a secret of several lines this long or longer are masked on their own.
MIN_LINE = 8
#: How a preview shows that it cut its text short; and the fewest characters of a secret it may show before
#: them that are masked (a shorter end matches the start of a secret by chance too often).
CUT = "…"
MIN_PARTIAL = 3


class Redactor:
    """Replaces known secret values (their JSON-escaped, percent-encoded and base64 forms too) inside strings
    of nested data. Data without a secret comes back as the very same object, so the common case copies
    nothing."""

    __slots__ = ("_forms", "_longest", "_memo")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {value for value in secrets if value}
        # Each line of a secret of several lines (a private key) is a secret too: a command's output is shown
        # line by line as it runs, and a step may print only part of the key.
        values |= {line for value in values if "\n" in value for line in value.splitlines() if len(line) >= MIN_LINE}
        forms = values | {json.dumps(value, ensure_ascii=False)[1:-1] for value in values}
        forms |= {form for value in values for form in encoded_forms(value)}
        self._forms = tuple(sorted(forms, key=len, reverse=True))  # longest first: a secret inside another
        self._longest = len(self._forms[0]) if self._forms else 0
        self._memo: tuple[object, Any] = (None, None)

    def __bool__(self) -> bool:
        return bool(self._forms)

    @property
    def forms(self) -> tuple[str, ...]:
        """Every text that is masked: the secrets and their JSON-escaped and encoded forms, longest first."""
        return self._forms

    def text(self, value: str) -> str:
        """``value`` with every secret masked, and the start of one where a preview cut the text short."""
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        if value.endswith(CUT) and self._forms:
            # A preview ("…" at the end) may stop inside a secret: what it shows of it is masked too.
            cut = self.partial_at_end(value[: -len(CUT)])
            if cut >= MIN_PARTIAL:
                value = value[: -len(CUT) - cut] + MASK + CUT
        position = value.find(CUT)
        while position >= 0 and self._forms:
            # So may the tail of a long text (a command's stderr), which starts with "…", alone or at the end
            # of a message (``command failed …: …tail``).
            start = position + len(CUT)
            cut = self.partial_at_start(value[start : start + self._longest])
            if cut >= MIN_PARTIAL:
                value = value[:start] + MASK + value[start + cut :]
            position = value.find(CUT, start)
        return value

    def partial_at_start(self, text: str) -> int:
        """How many characters at the start of ``text`` are the end of a secret (or of one of its forms)."""
        longest = 0
        if not text:
            return 0
        first = text[0]
        for form in self._forms:
            # Only where the form holds text's first character can its end start text: try those places.
            index = form.find(first, 1)
            while index >= 0:
                size = len(form) - index
                if size <= longest:
                    break
                if text.startswith(form[index:]):
                    longest = size
                    break
                index = form.find(first, index + 1)
        return longest

    def partial_at_end(self, text: str) -> int:
        """How many characters at the end of ``text`` are the start of a secret (or of one of its forms)."""
        longest = 0
        if not text:
            return 0
        last = text[-1]
        for form in self._forms:
            # Only where the form holds text's last character can its start end text: try those, longest first.
            index = form.rfind(last, 0, len(form) - 1)
            while index >= 0 and index + 1 > longest:
                if text.endswith(form[: index + 1]):
                    longest = index + 1
                    break
                index = form.rfind(last, 0, index)
        return longest

    def redact(self, value: Any) -> Any:
        """Strings, mapping keys and values, list and tuple items, masked at any depth."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            changed = False
            result: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = self.text(key) if isinstance(key, str) else key
                new_item = self.redact(item)
                changed = changed or new_key is not key or new_item is not item
                result[new_key] = new_item
            return result if changed else value
        if isinstance(value, (list, tuple)):
            items = [self.redact(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def event(self, event: Event) -> Event:
        """An event, masked once even when several sinks ask for it (the bus hands each the same object)."""
        seen, masked = self._memo  # one read of a tuple: safe when sinks run on several threads
        if seen is event:
            return masked  # type: ignore[no-any-return]
        masked = self.redact(event)
        self._memo = (event, masked)
        return masked  # type: ignore[no-any-return]


#: The shortest base64 text that is masked: shorter runs of base64 letters appear in ordinary text by chance.
MIN_ENCODED_LENGTH = 6


def encoded_forms(value: str) -> set[str]:
    """How ``value`` looks once a step has encoded it: percent-encoded (as in a URL or a form) and base64
    (standard and URL-safe alphabets), also when it sits inside a longer encoded text, as in the HTTP Basic
    ``Authorization`` header (``base64(user:secret)``).

    Base64 turns every 3 bytes into 4 letters, so a secret inside a longer text is encoded in one of three
    ways, depending on where it starts; for each, the letters that depend on the secret's bytes alone are
    masked (the one or two letters at either end that mix in the neighbouring bytes are left).
    """
    from base64 import b64encode
    from urllib.parse import quote, quote_plus

    raw = value.encode("utf-8", "surrogatepass")
    forms = {quote(value, safe=""), quote(value, safe="/"), quote_plus(value, safe=""), quote_plus(value, safe="/")}
    forms |= {re.sub("%[0-9A-F]{2}", lambda match: match.group(0).lower(), form) for form in forms}
    for offset in range(3):
        encoded = b64encode(bytes(offset) + raw).decode("ascii").rstrip("=")
        core = encoded[-(-4 * offset // 3) : 4 * (offset + len(raw)) // 3]
        if len(core) >= MIN_ENCODED_LENGTH:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    padded = b64encode(raw).decode("ascii")  # the whole value encoded alone, with its padding
    if len(padded) >= MIN_ENCODED_LENGTH:
        forms |= {padded, padded.replace("+", "-").replace("/", "_")}
    forms.discard(value)
    return forms


class StreamMasker:
    """Masks secrets in text that arrives in pieces (a streamed reply), where a secret may be split between
    two pieces: the end of a piece that could be the start of a secret is held back until the next piece
    (or ``flush``) shows what it is. Held-back text is rare and never longer than the longest secret."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.pending = ""

    def feed(self, piece: str) -> str:
        """The text that is safe to show now."""
        text = self.redactor.text(self.pending + piece)
        hold = self.redactor.partial_at_end(text)
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """Whatever is still held back (the stream ended)."""
        text, self.pending = self.pending, ""
        return text


class RedactingSink:
    """A sink that masks each event before handing it on."""

    def __init__(self, sink: Sink, redactor: Redactor) -> None:
        self.sink = sink
        self.redactor = redactor

    def put(self, event: Event) -> None:
        self.sink.put(self.redactor.event(event))

    def close(self) -> None:
        self.sink.close()


def redacting_listener(
    listener: Callable[[str, str, str], None] | None, redactor: Redactor
) -> Callable[[str, str, str], None] | None:
    """A live-output listener (``run`` step lines on the console) that masks each line."""
    if listener is None or not redactor:
        return listener
    target = listener

    def masked(path: str, stream: str, line: str) -> None:
        target(path, stream, redactor.text(line))

    return masked


class RedactingHandle:
    """A run handle whose journal records and ``run.json`` fields are masked before they are written; every
    other member is the wrapped handle's (so the wrapper follows the ``RunHandle`` protocol as it grows)."""

    def __init__(self, handle: RunHandle, redactor: Redactor) -> None:
        self.inner = handle
        self.redactor = redactor

    def update(self, **fields: Any) -> None:
        self.inner.update(**self.redactor.redact(fields))

    def mark(self, **fields: Any) -> None:
        self.inner.mark(**self.redactor.redact(fields))

    def append(self, record: Mapping[str, Any], **options: Any) -> int | None:
        return self.inner.append(self.redactor.redact(record), **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RedactingStore:
    """A run store whose step cache keeps masked values (the engine reaches the cache through the run);
    every other member is the wrapped store's."""

    def __init__(self, store: RunStore, redactor: Redactor) -> None:
        self.inner = store
        self.redactor = redactor

    def cache_put(self, key: str, value: Any, **options: Any) -> None:
        self.inner.cache_put(key, self.redactor.redact(value), **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def masked_handle(handle: RunHandle, redactor: Redactor) -> RunHandle:
    """``handle`` with masking (typed as the protocol: the wrapper forwards what it does not mask)."""
    return cast("RunHandle", RedactingHandle(handle, redactor))


def masked_store(store: RunStore, redactor: Redactor) -> RunStore:
    """``store`` with a masking step cache."""
    return cast("RunStore", RedactingStore(store, redactor))


def run_secrets(
    workflow: Workflow, config: Config, inputs: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], Redactor]:
    """The ``secrets`` the workflow and its sub-workflows declare (name → value, from the environment or
    ``.env``) and a redactor for them, for the values of its ``secret: true`` ``inputs`` and for every API
    key the run's providers could send."""
    from llmflow.config import declared_secrets
    from llmflow.providers import key_values

    # A sub-workflow reads the secrets its own file declares (the compiler checks that per file).
    names = dict.fromkeys(name for flow in workflow.workflows() for name in flow.secrets)
    declared = declared_secrets(names, config)
    keys = [key for key in key_values(config, _alias_options(workflow)) if len(key) >= MIN_KEY_LENGTH]
    given = [
        value
        for name, value in (inputs or {}).items()
        # A default is written in the workflow file for anyone to read: masking it would hide nothing.
        if name in workflow.inputs and workflow.inputs[name].hides(value) and isinstance(value, str)
        # Masking every "a" or "no" in every output would corrupt the journal: a value this short is kept
        # out of run.json (``***``) but not searched for in what the steps produce.
        if len(value) >= MIN_SECRET_INPUT_LENGTH
    ]
    return declared, Redactor([*declared.values(), *given, *keys])


def _alias_options(workflow: Workflow) -> Iterator[Mapping[str, Any]]:
    """The options of every model alias in the workflow and the sub-workflows it runs."""
    for flow in workflow.workflows():
        for spec in flow.models.values():
            yield spec.options
