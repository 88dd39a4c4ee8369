"""`python -m edgevit ...`: the same CLI as the `edgevit` command (for environments without its script)."""
from edgevit.cli import main

if __name__ == "__main__":
    main()
