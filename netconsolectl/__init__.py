"""netconsolectl: configure the Linux netconsole module through configfs, and receive its output.

The library works without the command line and never prints or exits; it raises
:class:`netconsolectl.errors.NetconsoleError`. Its packages, from the bottom up (a test holds
every import to this order):

- ``facts``, ``errors``, ``hostutil``: facts defined once, the error tree, the one atomic
  writer, command runner and kernel-release reader
- ``sender``: the configfs seam, the kernel's rules, targets, validated specs, plans, the
  ``netconsole=`` boot and module parameter, the marks of a person's ``disable``
- ``discover``: interface, source address and next-hop MAC from the kernel (netlink, ARP/NDP)
- ``host``: the host seam (/proc, sysfs, /dev/kmsg, the lock) and loglevel, persist, test,
  doctor
- ``declarative``: the configuration file and ``apply``
- ``watch``: keep targets delivering while the network changes
- ``receiver``: ``listen``, the collector side; it never imports the sender's side
- ``cli``: the typer commands, thin over the above
"""

__version__ = "0.1.0"
