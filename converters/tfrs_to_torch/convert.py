"""``convert(MODEL_DIR, OUT_DIR)``: detect, plan, write atomically, verify, report."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch import formats, planning, safety, verify, writer
from converters.tfrs_to_torch.compare import CONVERTER_TOLERANCE
from converters.tfrs_to_torch.errors import (
    ConversionError,
    TensorFlowNotInstalledError,
    UnsupportedLayerError,
    VerificationCheck,
    VerificationError,
)
from converters.tfrs_to_torch.plan import Plan, Status
from converters.tfrs_to_torch.tf_env import versions
from torchrs.io.spec import CheckpointSpec, ModelKind

# What a verified conversion accepts between TF and torchrs (the comparison engine's record, shared
# with translated graphs): |torchrs - TF| <= 1e-6 + 1e-5 * |TF|; top-K ids identical.
VERIFY_TOLERANCE = CONVERTER_TOLERANCE
# Inside the scratch directory: the default directory of Python's tempfile during a conversion.
TEMP_FILES_DIR = "tmp"


class ForwardCheck(str, Enum):
    """What became of the TF-vs-torchrs forward comparison (``summary.forward_check`` in ``torchrs.json``)."""

    COMPARED = "compared"
    NOTHING_TO_COMPARE = "no part has sample inputs or a traced TF function"
    SKIPPED_NO_TENSORFLOW = "skipped: TensorFlow is not installed"
    NOT_REQUESTED = "not run (--no-verify)"


@dataclass(frozen=True)
class ConversionResult:
    """What a conversion did (the CLI prints it; ``--json`` dumps it).

    Attributes:
        source: the input path; source_format: what it was detected as.
        out_dir: where the checkpoint was written.
        model_kind: ``index`` / ``tower`` / ``model`` / ``weights``.
        converted, skipped, unsupported: counts of report entries.
        tensors_checked: tensors re-read and compared exactly after writing.
        max_abs_diff: per part, TF vs torchrs on sample inputs (empty when not run).
        notes: remarks (assumptions, next steps).
        forward_check: whether the forward comparison ran (:class:`ForwardCheck`).
    """

    source: str
    source_format: str
    out_dir: str
    model_kind: str
    converted: int
    skipped: int
    unsupported: int
    tensors_checked: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    forward_check: ForwardCheck = ForwardCheck.NOT_REQUESTED

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__, notes=list(self.notes), forward_check=self.forward_check.value)


def default_out_dir(fmt: formats.SourceFormat) -> Path:
    """``<model>_torchrs`` next to the input."""
    source = Path(fmt.path)
    stem = source.name[: -len(".keras")] if source.name.endswith(".keras") else source.name
    return source.with_name(f"{stem}_torchrs")


def parse_vocab_flags(values: Iterable[str]) -> dict[str, Path]:
    """``NAME=FILE`` flags -> {layer name or path: file}."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name or not file:
            raise ConversionError(f"--vocab expects NAME=FILE, got {value!r}.")
        if not Path(file).is_file():
            raise ConversionError(f"--vocab {name}: file {file!r} does not exist.")
        safety.check_vocab_file(name, Path(file))  # a FIFO, an unreadable file, an empty line...
        out[name] = Path(file)
    return out


def convert(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    strict: bool = True,
    overwrite: bool = False,
    vocab: dict[str, Path] | None = None,
    run_verify: bool = True,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    trust_model: bool = False,
    allow_nonfinite: bool = False,
) -> ConversionResult:
    """Converts a TFRS / Keras export into a torchrs checkpoint directory.

    Args:
        model_dir: SavedModel directory, Keras SavedModel, ``.keras`` archive or TF checkpoint.
        out_dir: output directory (default ``<model>_torchrs`` next to the input).
        strict: fail on unsupported layers (else list them in ``report.json``).
        overwrite: replace an existing non-empty ``out_dir``.
        vocab: vocabulary files replacing exported ones, by layer name or object path.
        run_verify: after writing, re-read and compare every tensor, and run TF vs torchrs forward.
        progress: wrapper of the tensor iteration (a tqdm bar).
        trust_model: run the export's functions even if they hold ops outside the pure allow-list.
        allow_nonfinite: convert NaN / inf source weights (listed in ``report.json``) instead of failing.

    Returns:
        The :class:`ConversionResult`.

    Raises:
        ConversionError: every user-facing problem; nothing is left at ``out_dir`` then.
    """
    fmt = formats.detect_format(model_dir)
    out = Path(out_dir) if out_dir is not None else default_out_dir(fmt)
    # The source / --out relation, the op and Keras class allow-lists, declared sizes: before TF runs.
    record = safety.preflight(fmt.kind, fmt.path, fmt.checkpoint_prefix, out, overwrite=overwrite,
                              trust_model=trust_model, allow_nonfinite=allow_nonfinite)  # fmt: skip
    writer.check_output_dir(out, overwrite)
    vocab = safety.VocabRequests(vocab or {})
    # The temporary sibling of --out exists (under the lock) before TF reads anything. What the
    # conversion unpacks or re-saves (a .keras archive's assets, its Keras SavedModel) and the
    # temporary files TensorFlow makes (autograph's generated modules, removed only at exit) go into
    # its scratch directory, never $TMPDIR: a killed run leaves them only where the next run to this
    # --out removes them.
    target = writer.AtomicDirectory(out, overwrite)
    scratch = target.path / writer.SCRATCH_DIR
    plan: Plan | None = None
    try:
        with safety.temporary_files_in(scratch / TEMP_FILES_DIR):
            try:
                if fmt.kind == formats.CHECKPOINT:
                    plan = planning.plan_checkpoint(fmt, strict=strict)
                else:
                    plan = planning.plan_saved_model(
                        fmt, strict=strict, vocab_overrides=vocab, scratch=scratch
                    )
            except UnsupportedLayerError as err:
                if strict:
                    raise
                # A layer even --no-strict cannot skip: the advice must not be to pass --no-strict.
                raise UnsupportedLayerError(
                    err.class_name, err.path, err.detail, strict=False
                ) from None
            safety.watch_nonfinite(plan, record.nonfinite)
            safety.check_vocab_used(vocab, fmt.path)
            weights_file = target.path / writer.WEIGHTS_FILE
            writer.write_safetensors(
                weights_file,
                plan.tensors,
                metadata={"format": "pt", "source": fmt.path},
                progress=progress,
            )
            safety.raise_on_nonfinite(record.nonfinite, allow_nonfinite)
            checked = _tensor_check(weights_file, plan) if run_verify else 0
            counts = {
                s.value: sum(1 for e in plan.report if e.status is s)
                for s in (Status.CONVERTED, Status.SKIPPED, Status.UNSUPPORTED)
            }
            reasons: dict[str, int] = {}
            for entry in plan.report:
                if entry.status is Status.SKIPPED and entry.reason:
                    reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
            summary: dict[str, Any] = {
                **counts,
                "tensors": len(plan.tensors),
                "skipped_reasons": reasons,
            }
            config = CheckpointSpec(
                ModelKind(plan.model_kind),
                plan.architecture,
                source={"path": fmt.path, "format": fmt.kind, "conversion": "structured"},
                versions=versions(),
                summary=summary,
            ).to_json()
            config["notes"] = plan.notes  # the forward check may add notes; written again after it
            diffs: dict[str, float] = {}
            forward = ForwardCheck.NOT_REQUESTED
            safety_record = record.as_json()
            _write_records(target.path, config, plan, forward, safety_record)
            if run_verify:  # torchrs.load reads the directory just written
                nonfinite_ok = allow_nonfinite and bool(record.nonfinite)  # a NaN never passes
                comparison, forward = _forward_check(target.path, plan, nonfinite_ok)
                diffs = comparison.max_abs_diff if comparison is not None else {}
                if diffs:
                    summary["max_abs_diff"] = diffs
                _write_records(target.path, config, plan, forward, safety_record, comparison)
        shutil.rmtree(scratch)  # inside the directory about to become --out
        target.commit()
    except BaseException:
        target.abort()
        raise
    finally:
        for item in [] if plan is None else plan.cleanup:
            item.cleanup()
    assert plan is not None  # set, or the block above raised
    return ConversionResult(
        source=fmt.path,
        source_format=fmt.kind,
        out_dir=str(out),
        model_kind=plan.model_kind,
        converted=counts["converted"],
        skipped=counts["skipped"],
        unsupported=counts["unsupported"],
        tensors_checked=checked,
        max_abs_diff=diffs,
        skipped_reasons=reasons,
        notes=tuple(plan.notes),
        forward_check=forward,
    )


def _write_records(
    directory: Path,
    config: dict[str, Any],
    plan: Plan,
    forward: ForwardCheck,
    safety_record: dict[str, Any],
    comparison: verify.ForwardComparison | None = None,
) -> None:
    """``torchrs.json`` and ``report.json``, both saying what became of the forward comparison;
    ``report.json`` also what the safety checks found (non-finite weights, --trust-model) and the
    comparison's rows (the engine's ``Check`` records, as ``parity validate`` reports them)."""
    config["summary"]["forward_check"] = forward.value
    writer.write_json(directory / writer.CONFIG_FILE, config)
    record: dict[str, Any] = {
        "conversion": "structured",  # layer by layer into torchrs layers (not a translated graph)
        "entries": [e.as_json() for e in plan.report],
        "forward_check": forward.value,
        "safety": safety_record,
    }
    if comparison is not None:
        record["tolerance"] = asdict(comparison.tolerance)
        record["comparison"] = [asdict(row) for row in comparison.rows]
    writer.write_json(directory / writer.REPORT_FILE, record)


def _tensor_check(weights_file: Path, plan: Plan) -> int:
    """Check 1: every written tensor re-read and compared exactly with its source."""
    try:
        return verify.check_tensors(weights_file, plan)
    except VerificationError:
        raise
    except (
        Exception
    ) as err:  # a truncated file, an unreadable source: the check failed, never skipped
        raise VerificationError(VerificationCheck.TENSORS, _describe(err)) from err


def _forward_check(
    out_dir: Path, plan: Plan, nonfinite_ok: bool = False
) -> tuple[verify.ForwardComparison | None, ForwardCheck]:
    """Checks 2 and 3: ``torchrs.load`` rebuilds the written directory, then TF and torchrs agree on samples.

    Only a missing TensorFlow skips the comparison (the caller records it); any other failure raises.

    Raises:
        VerificationError: the module cannot be built, the TF side or the torch side fails on the samples,
            or they differ by more than ``VERIFY_TOLERANCE`` (top-K ids: by any id).
            A NaN on one side only never passes; with ``nonfinite_ok`` (NaN source weights allowed)
            it is noted as not verified instead.
    """
    try:
        module = verify.build_module(out_dir)
    except Exception as err:
        raise VerificationError(VerificationCheck.BUILD, _describe(err)) from err
    try:
        comparison = verify.forward_comparison(module, plan, VERIFY_TOLERANCE)
    except TensorFlowNotInstalledError:
        plan.notes.append(f"forward check skipped: {ForwardCheck.SKIPPED_NO_TENSORFLOW.value}")
        return None, ForwardCheck.SKIPPED_NO_TENSORFLOW
    except Exception as err:
        raise VerificationError(VerificationCheck.FORWARD, _describe(err)) from err
    # Each part's excess over the tolerance must be 0 (NaN: a NaN on one side only).
    bad = safety.verification_failures(comparison.excess, 0.0, nonfinite_ok, plan.notes)
    if bad:
        raise VerificationError(
            VerificationCheck.FORWARD,
            f"the converted model differs from TF on sample inputs (excess over "
            f"{VERIFY_TOLERANCE.describe()} / differing ids: {bad}). A tf.saved_model.save "
            "export does not store layer configs (lookup mask/OOV settings, activations); re-export "
            "with model.save(dir, save_format='tf') or model.save('model.keras')",
        )
    compared = ForwardCheck.COMPARED if comparison.excess else ForwardCheck.NOTHING_TO_COMPARE
    return comparison, compared


def _describe(err: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    first = str(err).splitlines()[0] if str(err) else ""
    if isinstance(err, ConversionError):  # already says what is wrong
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
