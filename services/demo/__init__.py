"""Bundled demo data: the walthamstow replay archive (design.md §4)."""
