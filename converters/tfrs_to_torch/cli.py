"""``python -m converters.tfrs_to_torch MODEL_DIR [--out OUT_DIR] ...``: the command-line front end.

User mistakes (a missing path, a Keras 3 file, an unsupported layer...) print one ``error:`` line and
exit with status 2; a failed verification check (re-reading the tensors, building the module, the TF
forward comparison) prints one ``error:`` line naming the check and exits with status 3. Nothing is
written in either case. Unexpected failures keep their traceback (a bug to report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError, VerificationError

EXIT_USER_ERROR = 2  # argparse's status for bad usage; we use it for every user-facing error
# A verification check failed: the export read fine but its conversion did not prove equal (a converter bug).
EXIT_VERIFICATION_FAILED = 3
# A run ended by a signal exits 128 + the signal number, as shells report it (SIGTERM: 143).
EXIT_SIGNAL_BASE = 128
# Conversions writing more bytes than this get a progress bar (a large embedding table).
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
        "--graph",
        choices=("auto", "always", "never"),
        default="auto",
        help=(
            "translate the export's traced signatures into a torch graph: 'auto' (default) when a "
            "tf.saved_model.save export cannot be rebuilt layer by layer, 'always', or 'never'"
        ),
    )
    parser.add_argument(
        "--signature",
        action="append",
        default=None,
        metavar="NAME",
        help="with graph translation: the signature to translate (repeatable; default: all)",
    )
    parser.add_argument(
        "--emit-python",
        metavar="FILE",
        help="with graph translation: also write editable PyTorch source of the model to FILE",
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="run the export's functions even if they hold ops outside the pure allow-list "
        "(file, network, py_func...), and accept a Keras SavedModel whose keras_metadata.pb names "
        "classes outside the Keras / TFRS allow-list; recorded in report.json. Only for models "
        "you trust",
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
    from converters.tfrs_to_torch.convert import ForwardCheck

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
    if result.forward_check is not ForwardCheck.COMPARED:
        lines.append(f"  forward:     {result.forward_check.value}")
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

    # TF's native logging hidden unless --verbose; SIGTERM / SIGINT / SIGHUP clean up.
    with safety.quiet_native_output(args.verbose), safety.raise_on_signals():
        try:
            from converters.tfrs_to_torch.convert import convert, parse_vocab_flags

            if args.graph == "always":
                return _print_graph(_convert_graph(args), args.json)
            try:
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
                if args.graph == "never" or not _fallback_to_graph(args, err):
                    raise
                # No Keras configs to rebuild layers from (or the layers rebuilt from defaults
                # did not reproduce TF): the traced signatures are the contract.
                try:
                    translated = _convert_graph(args)
                except ConversionError as graph_err:  # one error line: both reasons
                    raise ConversionError(
                        f"{err} Translating the exported signatures instead failed too: "
                        f"{_first_sentence(graph_err)}."
                    ) from None
                print(
                    f"note: layer-by-layer conversion is not possible ({_first_sentence(err)}); "
                    "the exported signatures were translated instead.",
                    file=sys.stderr,
                )
                return _print_graph(translated, args.json)
        except VerificationError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_VERIFICATION_FAILED
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


def _fallback_to_graph(args: argparse.Namespace, err: ConversionError) -> bool:
    """True for a SavedModel written by ``tf.saved_model.save`` (no Keras metadata): its traced
    signatures can be translated instead. A safety refusal stays final: the same checks run again
    here and raise it before anything else is said."""
    from converters.tfrs_to_torch import formats

    try:
        fmt = formats.detect_format(args.model_dir)
    except ConversionError:
        return False
    if fmt.kind != formats.SAVED_MODEL:
        return False
    _preflight(args, fmt)
    return True


def _preflight(args: argparse.Namespace, fmt: Any) -> None:
    """The safety checks of a conversion (source / --out, op allow-list, sizes), before TF runs."""
    from pathlib import Path

    from converters.tfrs_to_torch import safety
    from converters.tfrs_to_torch.convert import default_out_dir

    out = Path(args.out) if args.out is not None else default_out_dir(fmt)
    safety.preflight(fmt.kind, fmt.path, fmt.checkpoint_prefix, out, overwrite=args.overwrite,
                     trust_model=args.trust_model, allow_nonfinite=args.allow_nonfinite)  # fmt: skip


def _first_sentence(err: BaseException) -> str:
    text = str(err).strip()
    return text.split(". ")[0].rstrip(".") if text else type(err).__name__


def _convert_graph(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from converters.tfrs_to_torch import formats
    from converters.tfrs_to_torch.convert import default_out_dir
    from converters.tfrs_to_torch.graph_convert import convert_graph

    fmt = formats.detect_format(args.model_dir)
    if fmt.kind not in (formats.SAVED_MODEL, formats.KERAS_SAVED_MODEL):
        raise ConversionError(
            f"--graph translates SavedModel signatures; {args.model_dir} is a {fmt.kind}."
        )
    out = Path(args.out) if args.out is not None else default_out_dir(fmt)
    _preflight(args, fmt)  # the same checks as the layer-by-layer path, before TF loads anything
    return dict(
        convert_graph(
            fmt.path,
            out,
            overwrite=args.overwrite,
            run_verify=args.verify,
            signatures=args.signature,
            emit_python_to=args.emit_python,
        )
    )


def _print_graph(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    lines = [f"converted OK -> {result['out_dir']} (translated graph)"]
    lines.append(
        f"  signatures: {', '.join(result['signatures'])}; variables: {result['variables']}; "
        f"lookup tables: {result['tables']}"
    )
    verification = result.get("verification")
    if isinstance(verification, dict):
        lines.append(f"  verified against TF on sampled inputs: {sorted(verification)}")
    else:
        lines.append(f"  verification: {verification}")
    print("\n".join(lines))
    return 0
