"""The graders' tests; the problems they grade against."""

from igpo_jax.data import Example


def _gsm8k(answer="18"):
    return Example("Janet's ducks lay 16 eggs per day. How much does she make?", answer, "", "")


def _math(answer):
    return Example("Find x.", answer, "", "")
