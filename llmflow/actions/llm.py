"""The ``llm`` action: one model call, with structured output validated (and repaired) against a schema."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from llmflow.durations import parse_duration
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError, ProviderError
from llmflow.providers import ChatRequest, ChatResponse

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_CALL_KEYS = ("temperature", "max_tokens", "stop", "timeout")


def split_model(model: str, step_id: str) -> tuple[str, str]:
    """``provider/model`` → (provider, model)."""
    provider, sep, name = model.partition("/")
    if not sep or not provider or not name:
        raise ActionError(f"step '{step_id}': model {model!r} must be written provider/model")
    return provider, name


def build_messages(config: dict[str, Any]) -> list[dict[str, str]]:
    """``system``, ``messages`` and ``prompt`` as one chat transcript."""
    messages: list[dict[str, str]] = []
    if config.get("system"):
        messages.append({"role": "system", "content": str(config["system"])})
    for message in config.get("messages") or ():
        messages.append({"role": str(message.get("role", "user")), "content": str(message.get("content", ""))})
    if config.get("prompt") is not None:
        messages.append({"role": "user", "content": str(config["prompt"])})
    return messages


def parse_structured(text: str) -> Any:
    """The JSON value in a reply, tolerating a Markdown code fence around it."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text.strip()
    return json.loads(body)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The first way ``value`` breaks ``schema``, or ``None``."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{error.message}" + (f" (at {where})" if where else "")


def _resolve_model(ctx: ActionContext) -> str:
    model = ctx.config.get("model")
    if model:
        return str(model)
    from_env = os.environ.get("LLMFLOW_MODEL")
    if from_env:
        return from_env
    raise ActionError(
        f"step '{ctx.node.id}': no model given: set llm.model, defaults.model or the LLMFLOW_MODEL variable",
        path=ctx.path,
    )


async def _call(ctx: ActionContext, model: str, messages: list[dict[str, str]], schema: Any) -> ChatResponse:
    provider_name, name = split_model(model, ctx.node.id)
    services: Any = ctx.services
    try:
        provider = services.providers.get(provider_name)
    except KeyError:
        known = ", ".join(services.providers.names())
        raise ActionError(f"step '{ctx.node.id}': unknown model provider '{provider_name}' (known: {known})") from None
    options = dict(ctx.node.options.get("model_options") or {})
    provider_options = dict(options.pop("options", None) or {})
    call = {key: options[key] for key in _CALL_KEYS if key in options}
    call.update({key: ctx.config[key] for key in _CALL_KEYS if ctx.config.get(key) is not None})
    if provider_name == "mock":
        provider_options["call_index"] = services.next_call_index(model)
    stop = call.get("stop")
    request = ChatRequest(
        model=name,
        messages=tuple(messages),
        temperature=call.get("temperature"),
        max_tokens=call.get("max_tokens"),
        stop=tuple([stop] if isinstance(stop, str) else stop or ()),
        json_schema=schema,
        timeout=parse_duration(call["timeout"]) if call.get("timeout") is not None else None,
        options=provider_options,
        idempotency_key=ctx.idempotency_key,
    )
    on_chunk = None
    if ctx.config.get("stream"):

        def on_chunk(text: str) -> None:
            ctx.emit("llm.chunk", {"text": text})

    response: ChatResponse = await provider.complete(request, on_chunk)
    return response


async def call_model(ctx: ActionContext) -> ActionResult:
    """Call the model (falling back to other models when one is unavailable); validate structured output."""
    schema = ctx.node.options.get("schema")
    messages = build_messages(ctx.config)
    if not messages:
        raise ActionError(f"step '{ctx.node.id}': nothing to send: give a prompt or messages", path=ctx.path)
    if schema is not None:
        messages[-1] = dict(messages[-1])
        messages[-1]["content"] += "\n\nReply with JSON only, matching this JSON Schema:\n" + json.dumps(schema)
    models = [_resolve_model(ctx), *[str(m) for m in ctx.config.get("fallback") or ()]]
    repairs = int(ctx.config.get("repair_attempts", 2))
    services: Any = ctx.services
    usage = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0, "calls": 0}
    last_error: ProviderError | None = None
    for model in models:
        transcript = list(messages)
        try:
            for attempt in range(repairs + 1):
                response = await _call(ctx, model, transcript, schema)
                usage["input_tokens"] += response.input_tokens
                usage["output_tokens"] += response.output_tokens
                usage["cost"] += services.cost_of(model, response.input_tokens, response.output_tokens)
                usage["calls"] += 1
                if schema is None:
                    return ActionResult(output=response.text, extra={"model": model}, usage=usage)
                try:
                    value = parse_structured(response.text)
                    problem = schema_problem(value, schema)
                except json.JSONDecodeError as error:
                    problem = f"the reply is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
                if problem is None:
                    return ActionResult(output=value, extra={"model": model, "repairs": attempt}, usage=usage)
                if attempt == repairs:
                    tries = attempt + 1
                    message = f"step '{ctx.node.id}': reply fails the schema after {tries} tries: {problem}"
                    raise ActionError(message, path=ctx.path, data={"reply": response.text[:500]})
                transcript += [
                    {"role": "assistant", "content": response.text},
                    {"role": "user", "content": f"That reply is invalid: {problem}. Reply again with JSON only."},
                ]
        except ProviderError as error:
            last_error = error
            if model == models[-1] or error.status in (400, 401, 403):
                raise
            ctx.emit("llm.fallback", {"from": model, "error": error.message})
    assert last_error is not None
    raise last_error
