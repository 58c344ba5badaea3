"""Reading JSON that a model, a command or a server sent: untrusted text, whose every failure is a parse error."""

from __future__ import annotations

import json
import sys
from typing import Any


def load_json(text: str) -> Any:
    """``json.loads``, except that text nested too deeply for the parser, or holding an integer longer than
    Python converts (4,300 digits), raises ``json.JSONDecodeError`` like any other invalid JSON instead of a
    ``RecursionError`` or a bare ``ValueError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(f"a number has more than {sys.get_int_max_str_digits()} digits", text, 0) from None
