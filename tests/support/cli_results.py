"""What a command's result must look like, for the CLI tests."""

from __future__ import annotations

from typer.testing import Result


def ok(result: Result, code: int = 0) -> str:
    """The command ended with ``code`` (0: success) and printed no traceback; its output."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def refused(result: Result, *words: str) -> str:
    """A clear refusal: exit 1, one ``error:`` line naming ``words``, and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)
    return result.output
