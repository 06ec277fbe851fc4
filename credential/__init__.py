"""credential package."""
