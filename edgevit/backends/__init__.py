"""One folder per backend (target + runtime); each folder's `__init__` registers its row."""
