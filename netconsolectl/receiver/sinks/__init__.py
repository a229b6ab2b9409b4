"""Outputs of the receiver: JSON lines, human lines, per-host files, syslog, journald."""
