"""fairmed.train."""
