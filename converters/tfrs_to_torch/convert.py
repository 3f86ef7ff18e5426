"""``convert(MODEL_DIR, OUT_DIR)``: detect, plan, write atomically, verify, report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch import formats, readers, safety, verify, writer
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.tf_env import versions

FORMAT_VERSION = 1  # torchrs.io.FORMAT_VERSION (kept equal; torchrs.io is not imported here)
# Largest TF-vs-torch difference a verified conversion accepts: float32 matmuls summed in another
# order differ by a few ulps (~1e-7 here); a wrong config (mask, activation) differs by >= 1e-3.
VERIFY_TOLERANCE = 1e-5


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

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__, notes=list(self.notes))


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
        safety.check_vocab_file(name, Path(file))  # issue 11: FIFO, unreadable, empty line...
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
    # issue 11: source/--out relation, op allow-list, Keras class allow-list, declared sizes.
    record = safety.preflight(fmt.kind, fmt.path, fmt.checkpoint_prefix, out, overwrite=overwrite,
                              trust_model=trust_model, allow_nonfinite=allow_nonfinite)  # fmt: skip
    writer.check_output_dir(out, overwrite)
    vocab = safety.VocabRequests(vocab or {})
    if fmt.kind == formats.CHECKPOINT:
        plan = readers.plan_checkpoint(fmt, strict=strict)
    else:
        plan = readers.plan_saved_model(fmt, strict=strict, vocab_overrides=vocab)
    safety.watch_nonfinite(plan, record.nonfinite)
    target = writer.AtomicDirectory(out, overwrite)
    try:
        safety.check_vocab_used(vocab, fmt.path)
        weights_file = target.path / writer.WEIGHTS_FILE
        writer.write_safetensors(
            weights_file,
            plan.tensors,
            metadata={"format": "pt", "source": fmt.path},
            progress=progress,
        )
        safety.raise_on_nonfinite(record.nonfinite, allow_nonfinite)
        checked = verify.check_tensors(weights_file, plan) if run_verify else 0
        counts = {
            s: sum(1 for e in plan.report if e.status == s)
            for s in ("converted", "skipped", "unsupported")
        }
        reasons: dict[str, int] = {}
        for entry in plan.report:
            if entry.status == "skipped" and entry.reason:
                reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
        summary: dict[str, Any] = {
            **counts,
            "tensors": len(plan.tensors),
            "skipped_reasons": reasons,
        }
        config = {
            "format": "torchrs",
            "format_version": FORMAT_VERSION,
            "model_kind": plan.model_kind,
            "architecture": plan.architecture,
            "source": {"path": fmt.path, "format": fmt.kind},
            "versions": versions(),
            "summary": summary,
            "notes": plan.notes,
        }
        writer.write_json(target.path / writer.CONFIG_FILE, config)
        writer.write_json(
            target.path / writer.REPORT_FILE,
            {"entries": [e.as_json() for e in plan.report], "safety": record.as_json()},
        )
        diffs: dict[str, float] = {}
        if run_verify:
            try:
                diffs = verify.forward_differences(target.path, plan)
            except ConversionError:
                raise
            except Exception as err:  # the TF side could not be called: say so, keep the output
                plan.notes.append(f"forward check skipped: {type(err).__name__}: {err}")
            nonfinite_ok = allow_nonfinite and bool(record.nonfinite)  # a NaN never passes
            bad = safety.verification_failures(diffs, VERIFY_TOLERANCE, nonfinite_ok, plan.notes)
            if bad:
                raise ConversionError(
                    f"Verification failed: the converted model differs from TF on sample inputs "
                    f"({bad}). Nothing was written. A tf.saved_model.save export does not store "
                    "layer configs (lookup mask/OOV settings, activations); re-export with "
                    "model.save(dir, save_format='tf') or model.save('model.keras')."
                )
            if diffs:
                summary["max_abs_diff"] = diffs
                writer.write_json(target.path / writer.CONFIG_FILE, config)
        target.commit()
    except BaseException:
        target.abort()
        raise
    finally:
        for item in plan.cleanup:
            item.cleanup()
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
    )
