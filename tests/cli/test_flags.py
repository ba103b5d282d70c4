"""The library names its own parameters (``texts=``); the CLI shows its flags (``--texts``)."""

import pytest

from artent import api
from artent.cli import main
from artent.cli.flags import FLAGS, as_flags


def test_read_texts_names_a_missing_path_once_in_the_api_words(tmp_path):
    missing = tmp_path / "no" / "such.txt"
    with pytest.raises(ValueError) as e:
        api.read_texts(missing)
    assert str(e.value) == f"texts={missing}: no such file or folder"


def test_the_cli_says_the_same_with_its_flag(tmp_path, capsys):
    missing = tmp_path / "no" / "such.txt"
    code = main(
        ["external", "--model", "tiny", "--texts", str(missing), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: --texts {missing}: no such file or folder"


@pytest.mark.parametrize(
    "message, shown",
    [
        (
            "tuned= needs base= (the checkpoint it was tuned from)",
            "--tuned needs --base (the checkpoint it was tuned from)",
        ),
        ("modules=: no module named 'x' in base", "--modules: no module named 'x' in base"),
        (
            "seq_len=17: needs at least two prime factors",
            "--seq-len 17: needs at least two prime factors",
        ),
        ("pass allow_pickle=True if you trust it", "pass --allow-pickle if you trust it"),
        ("check modules= and layers=", "check --modules and --layers"),
        ("fewer than n_texts=5; using 4", "fewer than --n-texts 5; using 4"),
        ("/tmp/sweep/rank=8: cannot read", "/tmp/sweep/rank=8: cannot read"),  # a path stays
        ("option lr must be > 0", "option lr must be > 0"),  # a file's option stays
        ("option seq_len=9 is too long", "option seq_len=9 is too long"),
    ],
)
def test_as_flags(message, shown):
    assert as_flags(message) == shown


def test_every_mapped_name_is_a_flag_of_some_command():
    import click
    import typer

    from artent.cli.app import app

    command = typer.main.get_command(app)
    ctx = click.Context(command)
    seen = set()
    for sub in command.commands.values():
        for param in sub.get_params(ctx):
            seen.update(o for o in param.opts if o.startswith("--"))
    assert set(FLAGS.values()) <= seen, set(FLAGS.values()) - seen
