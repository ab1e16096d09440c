"""fairmed.design."""
