"""Real-kernel tier: netconsolectl inside a QEMU guest, packets checked on the host."""

# Set (to the shared results directory) only in the guest's pytest run.
TIER_DIR_ENV = "NETCONSOLECTL_KERNEL_TIER_DIR"
