"""fairmed.data.sources."""
