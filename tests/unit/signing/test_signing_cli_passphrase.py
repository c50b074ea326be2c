"""Where the CLI takes passphrases from: file, environment, terminal — never argv."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.cli import identity_cmds
from app.cli.identity_cmds import ENV_PASSPHRASE, Passphrases
from app.cli.main import build_parser
from app.domain.errors import IdentityError, UsageError
from app.services.identity import PassphraseRequired


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_file_wins_and_only_its_first_line_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PASSPHRASE, "from env")
    f = tmp_path / "pw"
    f.write_text("from file  \nsecond line\n")
    assert Passphrases(f).get("?") == "from file  "
    assert Passphrases(None).get("?") == "from env"
    with pytest.raises(UsageError, match="cannot read passphrase file"):
        Passphrases(tmp_path / "missing").get("?")


def test_terminal_prompt_with_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)
    monkeypatch.setattr(identity_cmds.sys, "stdin", _Tty())
    answers = iter(["secret one", "secret one", "secret one", "secret two"])
    monkeypatch.setattr(identity_cmds.getpass, "getpass", lambda prompt: next(answers))
    assert Passphrases(None).get("New: ", confirm=True) == "secret one"
    with pytest.raises(IdentityError, match="the two passphrases differ"):
        Passphrases(None).get("New: ", confirm=True)


def test_no_source_without_terminal_explains_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)
    monkeypatch.setattr(identity_cmds.sys, "stdin", io.StringIO())
    with pytest.raises(PassphraseRequired, match="--passphrase-file FILE or " + ENV_PASSPHRASE):
        Passphrases(None).get("?", why="no secure keyring")


@pytest.mark.parametrize(
    "argv",
    [
        ["identity", "init", "--passphrase", "hunter2hunter2"],
        ["identity", "export", "f", "--passphrase", "hunter2hunter2"],
        ["sign", "1", "--out", "e", "--passphrase", "hunter2hunter2"],
    ],
)
def test_there_is_no_passphrase_argument(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "never taken on the command line" in err and "--passphrase-file" in err
    assert "hunter2" not in err


def test_passphrase_file_is_not_matched_by_an_abbreviation(tmp_path: Path) -> None:
    args = build_parser().parse_args(["identity", "init", "--passphrase-file", "pw.txt"])
    assert args.passphrase_file == Path("pw.txt")
