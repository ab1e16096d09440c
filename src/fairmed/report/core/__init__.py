"""The sections every report has, in reading order (study kinds add theirs via the registry)."""
