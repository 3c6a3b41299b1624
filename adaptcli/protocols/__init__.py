"""Protocols: a method over a whole benchmark (VTAB-1k, FGVC) with per-task tuning, and reports."""
