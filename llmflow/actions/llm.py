"""The ``llm`` action: one model call, with structured output validated (and repaired) against a schema."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmflow.actions.json_text import load_json
from llmflow.config import Config
from llmflow.durations import parse_duration
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError, ProviderError
from llmflow.providers import ChatRequest, ChatResponse, ChunkListener
from llmflow.providers.resilience import POLICY_OPTIONS, CallPolicy, Limiter, send
from llmflow.redaction import StreamMasker

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_CALL_KEYS = ("temperature", "max_tokens", "stop", "timeout")


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One model to try: ``provider/model`` and the options of the alias that named it."""

    model: str
    options: Mapping[str, Any] = field(default_factory=dict)


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
    return load_json(body)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The first way ``value`` breaks ``schema``, or ``None``."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{error.message}" + (f" (at {where})" if where else "")


def model_choices(ctx: ActionContext) -> list[ModelChoice]:
    """The model and its fallbacks, in order. The model is the step's (or ``defaults.model``, resolved when
    the workflow was compiled), else ``LLMFLOW_MODEL``, else ``llmflow.toml`` ``[defaults] model``."""
    config = ctx.config
    model = config.get("model")
    compiled = ctx.node.options.get("model_options")
    if model and compiled is not None:
        first = ModelChoice(str(model), dict(compiled))
    else:
        name = model or os.environ.get("LLMFLOW_MODEL") or _config(ctx).default_model
        if not name:
            raise ActionError(
                f"step '{ctx.node.id}': no model given: set llm.model, defaults.model, the LLMFLOW_MODEL "
                "variable or [defaults] model in llmflow.toml",
                path=ctx.path,
            )
        first = _lookup(ctx, str(name))
    choices = [first]
    if not config.get("fallback"):  # the alias's own fallbacks, as written in `models:`
        return choices + [_lookup(ctx, str(name)) for name in first.options.get("fallback") or ()]
    known = ctx.node.options.get("fallback_options")
    for index, fallback in enumerate(config["fallback"]):
        if isinstance(known, (list, tuple)) and index < len(known) and isinstance(known[index], Mapping):
            choices.append(ModelChoice(str(fallback), dict(known[index])))
        else:
            choices.append(_lookup(ctx, str(fallback)))
    return choices


def _lookup(ctx: ActionContext, name: str) -> ModelChoice:
    """A model named at run time: an alias of the workflow's ``models``, or ``provider/model``."""
    models: Mapping[str, Any] = getattr(getattr(ctx.services, "workflow", None), "models", None) or {}
    if name in models:
        return ModelChoice(str(models[name].model), dict(models[name].options))
    if "/" in name:
        return ModelChoice(name)
    known = ", ".join(sorted(models)) or "none declared"
    raise ActionError(
        f"step '{ctx.node.id}': unknown model '{name}': not an alias in 'models' ({known}) nor provider/model",
        path=ctx.path,
    )


def _config(ctx: ActionContext) -> Config:
    config = getattr(getattr(ctx.services, "providers", None), "config", None)
    return config if isinstance(config, Config) else Config()


def _number(ctx: ActionContext, key: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ActionError(f"step '{ctx.node.id}': {key} must be a number, not {value!r}", path=ctx.path) from None


def build_request(
    ctx: ActionContext, choice: ModelChoice, messages: list[dict[str, str]], schema: Any
) -> tuple[str, ChatRequest, CallPolicy]:
    """The provider name, the request and its retry/limit policy: step fields win over the alias's defaults,
    which win over ``llmflow.toml``."""
    provider_name, name = split_model(choice.model, ctx.node.id)
    alias = dict(choice.options)
    provider_options = dict(alias.get("options") or {})
    call = {key: alias[key] for key in _CALL_KEYS if alias.get(key) is not None}
    call.update({key: ctx.config[key] for key in _CALL_KEYS if ctx.config.get(key) is not None})
    settings = _config(ctx).provider(provider_name)
    policy = CallPolicy.from_settings(settings, provider_options)
    for key in POLICY_OPTIONS:
        provider_options.pop(key, None)
    if provider_name == "mock":
        services: Any = ctx.services
        provider_options["call_index"] = services.next_call_index(choice.model)  # replies stay in order on resume
    try:
        timeout = call.get("timeout", provider_options.pop("timeout", None))
        timeout = parse_duration(timeout) if timeout is not None else settings.get("timeout")
    except ValueError as error:
        raise ActionError(f"step '{ctx.node.id}': timeout: {error}", path=ctx.path) from None
    stop = call.get("stop")
    request = ChatRequest(
        model=name,
        messages=tuple(messages),
        temperature=_number(ctx, "temperature", call["temperature"], float) if "temperature" in call else None,
        max_tokens=_number(ctx, "max_tokens", call["max_tokens"], int) if "max_tokens" in call else None,
        stop=tuple([stop] if isinstance(stop, str) else [str(s) for s in stop or ()]),
        json_schema=schema,
        timeout=float(timeout) if timeout is not None else None,
        options=provider_options,
        idempotency_key=ctx.idempotency_key,
        base_url=str(alias["base_url"]) if alias.get("base_url") else None,
        api_key_env=str(alias["api_key_env"]) if alias.get("api_key_env") else None,
        base_dir=str(ctx.workflow_dir),
    )
    return provider_name, request, policy


async def _call(ctx: ActionContext, choice: ModelChoice, messages: list[dict[str, str]], schema: Any) -> ChatResponse:
    provider_name, request, policy = build_request(ctx, choice, messages, schema)
    registry: Any = getattr(ctx.services, "providers", None)
    if registry is None:
        raise ActionError(f"step '{ctx.node.id}': this run has no model providers", path=ctx.path)
    try:
        provider = registry.get(provider_name)
    except KeyError:
        import difflib

        names = list(registry.names())
        close = difflib.get_close_matches(provider_name, names, n=1)
        meant = f"did you mean '{close[0]}'? " if close else ""
        message = f"unknown model provider '{provider_name}' ({meant}known: {', '.join(names)})"
        raise ActionError(f"step '{ctx.node.id}': {message}") from None
    if hasattr(registry, "limiter"):
        endpoint = (provider_name, request.base_url or "")
        limiter = registry.limiter(endpoint, policy.max_concurrency, policy.requests_per_minute)
    else:
        limiter = Limiter(policy.max_concurrency, policy.requests_per_minute)
    redactor = getattr(registry, "redactor", None)
    masker = StreamMasker(redactor) if redactor else None
    on_chunk: ChunkListener | None = None
    if ctx.config.get("stream"):

        def on_chunk(text: str) -> None:
            if masker is not None:
                text = masker.feed(text)  # a secret split between two pieces must not show in either
            if text:
                ctx.emit("llm.chunk", {"text": text})

    def flush() -> None:
        if masker is not None and (rest := masker.flush()):
            ctx.emit("llm.chunk", {"text": rest})

    def on_retry(retry: int, delay: float, error: ProviderError) -> None:
        flush()
        data = {"model": choice.model, "retry": retry, "delay": round(delay, 3), "status": error.status}
        ctx.emit("llm.retry", {**data, "error": error.message})

    try:
        return await send(provider, request, on_chunk, policy=policy, limiter=limiter, on_retry=on_retry)
    finally:
        flush()


async def call_model(ctx: ActionContext) -> ActionResult:
    """Call the model (falling back to other models when one is unavailable); validate structured output."""
    if "history" in ctx.config:
        # Continuing a session's conversation is part of the language, but sessions are not built yet: fail
        # rather than send the prompt without the history the workflow asked for.
        raise ActionError(
            f"step '{ctx.node.id}': history is not available in this version of llmflow (sessions are not built"
            " yet); give the earlier turns in messages",
            path=ctx.path,
        )
    schema = ctx.node.options.get("schema")
    messages = build_messages(ctx.config)
    if not messages:
        raise ActionError(f"step '{ctx.node.id}': nothing to send: give a prompt or messages", path=ctx.path)
    if schema is not None:
        messages[-1] = dict(messages[-1])
        messages[-1]["content"] += "\n\nReply with JSON only, matching this JSON Schema:\n" + json.dumps(schema)
    choices = model_choices(ctx)
    usage: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0, "calls": 0}
    try:
        return await _try_models(ctx, choices, messages, schema, usage)
    except BaseException as error:
        if usage["calls"]:
            _charge(ctx, usage)  # tokens spent on a step that failed still count towards run.usage
        if isinstance(error, ProviderError):
            _name_step(ctx, error)
        raise


def _name_step(ctx: ActionContext, error: ProviderError) -> None:
    """Begin a provider's message (``openai/gpt-4o: …``) with the step, as every action's errors do, so that
    ``run.json``, the console, ``show`` and ``error.message`` read alike. Changed in place: the error keeps
    its class, status and retry advice."""
    prefix = f"step '{ctx.node.id}'"
    if not error.message.startswith(prefix):
        error.message = f"{prefix}: {error.message}"
        error.args = (error.message,)
    if not error.path:
        error.path = ctx.path


def _cache_material(ctx: ActionContext) -> list[list[Any]]:
    """What ``cache: true`` must key on besides the step as written: the models chosen when it runs."""
    return [[choice.model, dict(choice.options)] for choice in model_choices(ctx)]


call_model.cache_material = _cache_material  # type: ignore[attr-defined]


async def _try_models(
    ctx: ActionContext, choices: list[ModelChoice], messages: list[dict[str, str]], schema: Any, usage: dict[str, Any]
) -> ActionResult:
    repairs = int(ctx.config.get("repair_attempts", 2))
    services: Any = ctx.services
    for position, choice in enumerate(choices):
        model = choice.model
        transcript = list(messages)
        try:
            for attempt in range(repairs + 1):
                response = await _call(ctx, choice, transcript, schema)
                usage["input_tokens"] += response.input_tokens
                usage["output_tokens"] += response.output_tokens
                usage["cost"] += services.cost_of(model, response.input_tokens, response.output_tokens)
                usage["calls"] += 1
                usage["model"] = model
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
            if position == len(choices) - 1 or error.status in (400, 401, 403):
                raise
            ctx.emit("llm.fallback", {"from": model, "to": choices[position + 1].model, "error": error.message})
    raise AssertionError("unreachable: the last model either answers or raises")


def _charge(ctx: ActionContext, usage: dict[str, Any]) -> None:
    ctx.emit("llm.usage", dict(usage))
    add_usage = getattr(ctx.services, "add_usage", None)
    if add_usage is not None:
        add_usage(usage)
