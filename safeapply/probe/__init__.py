"""The scan probe (runs on targets, stdlib only) and the pure parsers of its output."""
