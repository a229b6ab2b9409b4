"""The sender's configfs side: the configfs seam, targets, validated specs, plans, setup."""
