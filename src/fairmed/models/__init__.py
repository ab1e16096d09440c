"""fairmed.models."""
