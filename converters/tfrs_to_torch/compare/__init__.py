"""The one comparison engine of TF against torchrs: the converter's built-in verification, translated
graphs and ``python -m parity validate`` all sample, compare and report through it.

- :mod:`.tolerance`: the :class:`Tolerance` / :class:`Agreement` records and their named instances;
- :mod:`.sampling`: inputs drawn from the model's own vocabularies and statistics;
- :mod:`.arrays`, :mod:`.outputs`: element-wise comparisons (NaN on one side fails, on both agrees);
- :mod:`.index`: BruteForce / Streaming answers (identical ids, agreement ties aside, scores);
- :mod:`.rows`: the :class:`Check` rows of ``report.json`` and of parity's reports.
"""

from converters.tfrs_to_torch.compare.arrays import (
    ArrayComparison,
    compare_arrays,
    count_mismatches,
)
from converters.tfrs_to_torch.compare.index import (
    IndexComparison,
    as_identifiers,
    compare_index,
    top_k_agreement,
)
from converters.tfrs_to_torch.compare.outputs import (
    OutputComparison,
    compare_output,
    compare_outputs,
    flatten_outputs,
    to_numpy,
)
from converters.tfrs_to_torch.compare.rows import Check, array_rows, index_rows
from converters.tfrs_to_torch.compare.sampling import (
    UNKNOWN_TOKEN,
    InputField,
    Sample,
    normalization_statistics,
    probes,
    sample_input,
)
from converters.tfrs_to_torch.compare.tolerance import (
    CONVERTER_TOLERANCE,
    IDENTICAL_IDS,
    TOP_K_AGREEMENT,
    VALIDATE_TOLERANCE,
    Agreement,
    Tolerance,
)

__all__ = [
    "CONVERTER_TOLERANCE",
    "IDENTICAL_IDS",
    "TOP_K_AGREEMENT",
    "UNKNOWN_TOKEN",
    "VALIDATE_TOLERANCE",
    "Agreement",
    "ArrayComparison",
    "Check",
    "IndexComparison",
    "InputField",
    "OutputComparison",
    "Sample",
    "Tolerance",
    "array_rows",
    "as_identifiers",
    "compare_arrays",
    "compare_index",
    "compare_output",
    "compare_outputs",
    "count_mismatches",
    "flatten_outputs",
    "index_rows",
    "normalization_statistics",
    "probes",
    "sample_input",
    "to_numpy",
    "top_k_agreement",
]
