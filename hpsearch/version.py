"""The version of hpsearch (stored with every study and model file)."""

__version__ = "0.1.0"
