"""``python -m converters.tfrs_to_torch MODEL_DIR [--out OUT_DIR] ...``: the command-line front end.

User mistakes (a missing path, a Keras 3 file, an unsupported layer...) print one ``error:`` line and
exit with status 2; nothing is written. Unexpected failures keep their traceback (a bug to report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError

EXIT_USER_ERROR = 2  # argparse's status for bad usage; we use it for every user-facing error
# A run ended by a signal exits 128 + the signal number, as shells report it (SIGTERM: 143).
EXIT_SIGNAL_BASE = 128
# Checkpoints with more tensors than this get a progress bar.
PROGRESS_MIN_TENSORS = 1
# ... or with more bytes than this (a large embedding table).
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m converters.tfrs_to_torch",
        description=(
            "Convert a trained TFRS / Keras model (SavedModel, Keras SavedModel, .keras archive or TF "
            "checkpoint) into a torchrs checkpoint directory: torchrs.json + model.safetensors + "
            "report.json. Load it with torchrs.io.load(OUT_DIR)."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the export to convert")
    parser.add_argument(
        "--out", metavar="OUT_DIR", help="output directory (default: MODEL_DIR_torchrs)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--strict",
        dest="strict",
        action="store_true",
        default=True,
        help="fail on an unsupported layer (default)",
    )
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="convert what is supported, list the rest in report.json",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument(
        "--vocab",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="vocabulary file (one token per line) for the lookup layer NAME (layer name or object path)",
    )
    parser.add_argument(
        "--verify",
        dest="verify",
        action="store_true",
        default=True,
        help="re-read every tensor and compare a TF vs torchrs forward pass (default)",
    )
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip verification"
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="run the export's functions even if they hold ops outside the pure allow-list "
        "(file, network, py_func...); recorded in report.json. Only for models you trust",
    )
    parser.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="convert NaN / inf source weights instead of failing (listed in report.json)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own logging (hidden by default)"
    )
    return parser


def _progress(quiet: bool) -> Any:
    if quiet:
        return None

    def wrap(items: Sequence[Any]) -> Iterable[Any]:
        total = sum(int(t.dtype.itemsize) * max(1, _numel(t.shape)) for t in items)
        if total < PROGRESS_MIN_BYTES:
            return items
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (logs, pipes): a failure stays one line.
        return tqdm(items, desc="writing tensors", unit="tensor", file=sys.stderr, disable=None)

    return wrap


def _numel(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def summary_text(result: Any) -> str:
    lines = [
        f"Converted {result.source} ({result.source_format}) -> {result.out_dir}",
        f"  model kind:  {result.model_kind}",
        f"  converted:   {result.converted} entries; skipped: {result.skipped}; "
        f"unsupported: {result.unsupported}",
    ]
    for reason, count in sorted(result.skipped_reasons.items()):
        lines.append(f"    skipped {count:>4} x {reason}")
    if result.tensors_checked:
        lines.append(f"  verified:    {result.tensors_checked} tensors re-read, all identical")
    for part, diff in result.max_abs_diff.items():
        label = "top-K ids differing" if part.endswith("ids_mismatch") else "max |TF - torch|"
        lines.append(f"  forward:     {part}: {label} = {diff:.3g}")
    for note in result.notes:
        lines.append(f"  note:        {note}")
    if result.model_kind == "weights":
        lines.append(
            f"  load with:   converters.tfrs_to_torch.load_weights(module, {result.out_dir!r})"
        )
    else:
        lines.append(f"  load with:   torchrs.io.load({result.out_dir!r})")
    lines.append(f"  details:     {os.path.join(result.out_dir, 'report.json')}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    from converters.tfrs_to_torch import safety

    # issue 11: TF's native logging hidden unless --verbose; SIGTERM / SIGINT / SIGHUP clean up.
    with safety.quiet_native_output(args.verbose), safety.raise_on_signals():
        try:
            from converters.tfrs_to_torch.convert import convert, parse_vocab_flags

            result = convert(
                args.model_dir,
                args.out,
                strict=args.strict,
                overwrite=args.overwrite,
                vocab=parse_vocab_flags(args.vocab),
                run_verify=args.verify,
                progress=_progress(args.json),
                trust_model=args.trust_model,
                allow_nonfinite=args.allow_nonfinite,
            )
        except ConversionError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USER_ERROR
        except safety.Interrupted as err:
            print(f"error: interrupted by {err}; nothing was written.", file=sys.stderr)
            return EXIT_SIGNAL_BASE + err.signum
        except KeyboardInterrupt:
            print("error: interrupted; nothing was written.", file=sys.stderr)
            return EXIT_USER_ERROR
        except OSError as err:  # a full disk, a file-size limit, a path too long...
            print(f"error: {safety.describe_os_error(err)}", file=sys.stderr)
            return EXIT_USER_ERROR
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(summary_text(result))
    return 0
