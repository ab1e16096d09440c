"""Data layer: the Cohort table, GroupSpecs, sources, images and the generator (no torch here)."""

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupAssignment, GroupSpec, assign_groups

__all__ = ["Cohort", "GroupAssignment", "GroupSpec", "assign_groups"]
