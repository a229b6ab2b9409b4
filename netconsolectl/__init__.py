"""netconsolectl: configure the Linux netconsole module through configfs, and receive its output.

The library works without the command line and never prints or exits; it raises
:class:`netconsolectl.errors.NetconsoleError`. Its packages, from the bottom up:

- ``sender``: the configfs seam, one object per target directory, validated specs, plans
- ``discover``: interface, source address and next-hop MAC from the kernel (netlink, ARP/NDP)
- ``bootparam``: the ``netconsole=`` boot and module parameter
- ``host``: the host seam (/proc, sysfs, /dev/kmsg, the lock) and loglevel, persist, test, doctor
- ``declarative``: the configuration file and ``apply``
- ``receiver``: ``listen``, the collector side
- ``cli``: the typer commands, thin over the above
"""

__version__ = "0.1.0"
