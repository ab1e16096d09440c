"""fairmed.metrics."""
