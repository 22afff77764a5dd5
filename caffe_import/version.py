"""The package version (pyproject.toml holds the same), on the lowest floor so any module may
record it in what it writes."""
__version__ = "0.1.0"
