"""The sender's side: the configfs seam, the kernel's rules, targets, validated specs, plans,
setup and the ``netconsole=`` boot parameter. It imports nothing above it: what it needs from
the machine is the :class:`~netconsolectl.sender.machine.Machine` Protocol."""
