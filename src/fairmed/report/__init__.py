"""fairmed.report."""
