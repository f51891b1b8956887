"""One-token scoring: how anomalous a model finds an observation, read from the log-probabilities of its
first answer token to a yes/no question (`Sampling(max_tokens=1, top_logprobs=N)`), not from generated
text. One forward pass and one answer token per distinct observation.
"""

from __future__ import annotations

import math

YES, NO = "yes", "no"


def yes_probability(top_logprobs: dict[str, float] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives, each token compared after stripping
    spaces and case ("Yes", " yes", "YES" all count as yes); None when neither answer is among them (a
    request to ask again, or with more alternatives, never a score)."""
    if not top_logprobs:
        return None
    mass = {YES: 0.0, NO: 0.0}
    for token, logprob in top_logprobs.items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass[YES] + mass[NO]
    return mass[YES] / total if total > 0 else None
