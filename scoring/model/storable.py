"""Text as PostgreSQL stores it: NUL and lone surrogates replaced, so no text column, COPY or JSONB refuses it.

One rule for every writer (the batch's rejects, the prediction log): it sits in the model kernel so that both
batch and monitoring can use it without importing each other.
"""

from __future__ import annotations

import re

# NUL and lone surrogates: PostgreSQL's text, COPY and JSONB refuse NUL, UTF-8 cannot encode a surrogate.
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD, so any text column or JSONB accepts it."""
    return UNSTORABLE_TEXT.sub(REPLACEMENT, text)
