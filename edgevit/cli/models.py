"""`edgevit models` and `edgevit info`: the zoo at a glance."""
from __future__ import annotations
