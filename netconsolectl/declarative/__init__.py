"""The declarative layer: the configuration file and applying it (plan, apply, verify)."""
