"""The one rule for quoting an exception on one line (artent.errors.one_line)."""

from artent.errors import one_line


def test_first_line_by_default():
    assert one_line(ValueError("\n  bad value  \nhint: try again\n")) == "bad value"


def test_whole_message_collapsed():
    assert one_line(ValueError("bad\n  value\t here"), whole=True) == "bad value here"


def test_typed_leads_with_the_type_name():
    assert one_line(KeyError("x"), typed=True) == "KeyError: 'x'"


def test_an_empty_message_is_the_type_name():
    assert one_line(RuntimeError()) == "RuntimeError"
    assert one_line(RuntimeError("  \n"), typed=True) == "RuntimeError"


def test_a_plain_message():
    assert one_line("a\nb", whole=True) == "a b"
    assert one_line("") == ""
