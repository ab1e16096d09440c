"""fairmed.mitigate."""
