"""The Example type and trace helpers (data/__init__.py)."""

from igpo_jax.data import format_trace, split_trace


def test_split_trace():
    t = format_trace("1+2=3\n3+4=2", "2")
    rev, rest = split_trace(t)
    assert rev.endswith("</reasoning>\n") and rest.startswith("<answer>")
    rev, rest = split_trace(t, exclude_last_step=True)
    assert rev == "<reasoning>\n1+2=3\n" and rest.startswith("3+4=2")
    assert split_trace("no tags") == ("no tags", "")
