"""fairmed.studies."""
