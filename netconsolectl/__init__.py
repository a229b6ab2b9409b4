"""netconsolectl: configure the Linux netconsole module through configfs, and receive its output.

The library works without the command line: ``netconsolectl.target``, ``netconsolectl.spec``
and ``netconsolectl.plan`` never print or exit; they raise
:class:`netconsolectl.errors.NetconsoleError`.
"""

__version__ = "0.1.0"
