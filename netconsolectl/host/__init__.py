"""The host: its seam (/proc, sysfs, /dev/kmsg, the lock) and what is built on it: loglevel,
persistence across reboots, the end-to-end kmsg test, doctor."""
