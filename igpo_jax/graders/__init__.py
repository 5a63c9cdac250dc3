"""Answer graders of published evaluation code, re-written: each reads a completion as
its reference reads it and returns a score in [0, 1] (igpo_jax/protocols.py pairs them
with prompts and generation settings). One module per reference:

- ``d1``: d1's GSM8K, MATH500, Countdown and 4x4 Sudoku graders (and this package's AMC
  grader, which reads answers as d1's MATH grader does);
- ``opencompass``: OpenCompass's GSM8K and MATH (v2) graders (LLaDA-8B-Instruct);
- ``lm_eval``: lm-evaluation-harness 0.4.8's ``gsm8k_cot`` and ``minerva_math``
  (Dream-v0-Instruct-7B).
"""

from igpo_jax.graders.d1 import *  # noqa: F401,F403
from igpo_jax.graders.d1 import _Unnormalisable  # noqa: F401
from igpo_jax.graders.lm_eval import *  # noqa: F401,F403
from igpo_jax.graders.opencompass import *  # noqa: F401,F403
