"""Necks: multi-level feature fusion between a backbone and a head (lists of maps in, lists out)."""
