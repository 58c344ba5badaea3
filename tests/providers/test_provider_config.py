"""``llmflow.toml`` (project over user config dir), ``.env`` parsing, and masking secrets in nested data."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmflow.config import Config, declared_secrets, load_config, read_dotenv, user_config_file
from llmflow.errors import UsageError
from llmflow.redaction import MASK, Redactor, StreamMasker


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_the_project_file_wins_key_by_key_over_the_users(tmp_path: Path) -> None:
    write(
        user_config_file(),
        """
        [defaults]
        model = "openai/gpt-4o-mini"
        timeout = "30s"
        [providers.openai]
        api_key_env = "MY_OPENAI_KEY"
        max_concurrency = 2
        [prices]
        "openai/mine" = [1, 2]
        """,
    )
    write(
        tmp_path / "llmflow.toml",
        """
        [providers.openai]
        base_url = "http://localhost:11434/v1"
        max_concurrency = 4
        requests_per_minute = 60
        [providers.my-plugin]
        region = "eu"
        [prices]
        "openai/mine" = [0.5, 1.5]
        """,
    )
    config = load_config(tmp_path)
    assert config.default_model == "openai/gpt-4o-mini"
    assert config.request_timeout == 30.0
    assert config.provider("openai") == {
        "api_key_env": "MY_OPENAI_KEY",
        "max_concurrency": 4,
        "base_url": "http://localhost:11434/v1",
        "requests_per_minute": 60.0,
    }
    assert config.provider("my-plugin") == {"region": "eu"}  # a plugin's provider may take keys of its own
    assert config.prices == {"openai/mine": (0.5, 1.5)}
    assert len(config.files) == 2


def test_no_files_means_the_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert (config.default_model, config.request_timeout, dict(config.providers), config.files) == (None, 120.0, {}, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('[providers.openai]\nbase_url = "x\n', ":2:14: invalid TOML: Illegal character", id="syntax"),
        pytest.param(
            "[providers.openai]\n\nmax_concurrency = 0\n",
            ":3: [providers.openai] max_concurrency must be a whole number of at least 1",
            id="bad-value",
        ),
        pytest.param(
            '[providers.openai]\napi-key = "x"\n',
            ":2: unknown key 'api-key' in [providers.openai] (known: base_url, api_key_env, api_key, timeout,",
            id="unknown-key",
        ),
        pytest.param('[provider.openai]\nbase_url = "x"\n', ":1: unknown section [provider]", id="unknown-section"),
        pytest.param(
            '[prices]\n"gpt-4o" = [1, 2]\n',
            ':2: [prices] "gpt-4o" must be "provider/model" = [input, output] in $ per million',
            id="price-without-provider",
        ),
        pytest.param(
            '[defaults]\nmodel = "gpt-4o"\n', ":2: [defaults] model must be written provider/model", id="model"
        ),
        pytest.param(
            '[defaults]\ntimeout = "soon"\n', ":2: [defaults] timeout: 'soon' is not a duration", id="timeout"
        ),
    ],
)
def test_a_malformed_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "llmflow.toml", text)
    with pytest.raises(UsageError) as caught:
        load_config(tmp_path)
    assert str(caught.value).startswith(str(path) + message)
    assert "\n" not in str(caught.value)


def test_dotenv_lines_are_read_as_shells_write_them(tmp_path: Path) -> None:
    path = write(
        tmp_path / ".env",
        """
        # a comment
        PLAIN=value
        export EXPORTED=yes
        SPACED = padded
        SINGLE='it''s'
        DOUBLE="a \\"quoted\\" word"
        INLINE=value # a comment
        HASH="keep # this"
        EMPTY=
        not a line
        """,
    )
    assert read_dotenv(path) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "SINGLE": "it",
        "DOUBLE": 'a "quoted" word',
        "INLINE": "value",
        "HASH": "keep # this",
        "EMPTY": "",
    }
    assert read_dotenv(tmp_path / "missing.env") == {}


def test_the_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(dotenv={"TOKEN": "from-file", "OTHER": "file-only"})
    monkeypatch.setenv("TOKEN", "from-env")
    assert (config.env("TOKEN"), config.env("OTHER"), config.env("NONE")) == ("from-env", "file-only", None)
    assert declared_secrets(["TOKEN", "OTHER", "NONE"], config) == {"TOKEN": "from-env", "OTHER": "file-only"}


def test_the_redactor_masks_strings_keys_and_json_escaped_forms() -> None:
    redactor = Redactor(["s3cr3t-value", 'with"quote'])
    data = {"a": ["x s3cr3t-value y", ("s3cr3t-value",)], "s3cr3t-value": 1, "n": 3, "q": '{"k": "with\\"quote"}'}
    assert redactor.redact(data) == {
        "a": [f"x {MASK} y", (MASK,)],
        MASK: 1,
        "n": 3,
        "q": f'{{"k": "{MASK}"}}',
    }


def test_clean_data_comes_back_as_the_same_object() -> None:
    redactor = Redactor(["s3cr3t-value"])
    data = {"a": ["x", {"b": "y"}], "c": (1, "z")}
    assert redactor.redact(data) is data
    event = {"type": "step.completed", "data": {"preview": "s3cr3t-value"}}
    assert redactor.event(event) is redactor.event(event)  # masked once for every sink
    assert redactor.event(event)["data"]["preview"] == MASK


def test_an_empty_redactor_is_falsy_and_changes_nothing() -> None:
    assert not Redactor(["", ""])
    assert Redactor().text("anything") == "anything"


def test_a_secret_split_between_streamed_pieces_never_shows() -> None:
    masker = StreamMasker(Redactor(["sk-abcdef", "tok-123"]))
    pieces = ["key: sk-a", "bc", "def and sk-", "x, tok-1", "23 end", " to", "k-"]
    shown = [masker.feed(piece) for piece in pieces] + [masker.flush()]
    assert "".join(shown) == "key: *** and sk-x, *** end tok-"
    assert shown[:3] == ["key: ", "", "*** and "]  # held back only while it could still be a secret
