"""The parity harness: TFRS and torchrs run the same scenarios and are compared."""

# Before any parity module imports torch: OpenMP then yields at barriers (torchrs.config), which keeps
# the throughput figures meaningful on a loaded machine.
import torchrs  # noqa: F401
