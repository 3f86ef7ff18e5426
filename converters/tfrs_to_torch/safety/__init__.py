"""Safety of a conversion against hostile and broken inputs (see the README's "Safety" section).

The converter never writes into, over or around its source (:mod:`.output`), never runs a model's
code (:mod:`.graph_ops` for SavedModel functions, :mod:`.keras_files` for Keras configs), bounds
what it reads (:mod:`.keras_files`, :mod:`.inputs`), reports non-finite weights (:mod:`.nonfinite`)
and leaves nothing behind under faults (:mod:`.output`, :mod:`.process`).
"""

from converters.tfrs_to_torch.safety.inputs import (
    SafetyRecord,
    VocabRequests,
    check_vocab_file,
    check_vocab_used,
    preflight,
)
from converters.tfrs_to_torch.safety.nonfinite import (
    raise_on_nonfinite,
    verification_failures,
    watch_nonfinite,
)
from converters.tfrs_to_torch.safety.output import (
    OutputLock,
    remove_stale_siblings,
    temporary_files_in,
)
from converters.tfrs_to_torch.safety.process import (
    Interrupted,
    describe_os_error,
    quiet_native_output,
    raise_on_signals,
)

__all__ = [
    "Interrupted",
    "OutputLock",
    "SafetyRecord",
    "VocabRequests",
    "check_vocab_file",
    "check_vocab_used",
    "describe_os_error",
    "preflight",
    "quiet_native_output",
    "raise_on_nonfinite",
    "raise_on_signals",
    "remove_stale_siblings",
    "temporary_files_in",
    "verification_failures",
    "watch_nonfinite",
]
