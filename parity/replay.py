"""Lock-step parity against a recorded TF side: ``python -m parity replay DIR [SCENARIO ...] [--device cuda]``.

Replay runs the torchrs side of each recorded scenario (`parity.record`) from the record's initial weights on the
record's batches, and checks it against the recorded TF run with the very engine and tolerances of
``python -m parity run`` (`parity.harness.run_scenario`, `parity.harness.compare`, `parity.tolerances`); the
report has the same format. TensorFlow is never imported, so replay runs where only torch is installed (a GPU
machine) and costs only the torchrs side (CI).

Before anything runs, a record must still describe today's scenario: its configuration (at the record's
``--scale`` / ``--epochs``) must equal the scenario's current one, the code of its TF side must be the code it
was recorded with (`parity.provenance`: ``build_tf``, the TF hooks, the data shaping and the harness's TF driver),
and its data must be what ``--data`` gives (the recorded source by default, when it can be read here: the
synthetic set always can). Otherwise replay refuses, naming the difference and the command that records the
scenario again (``make records`` for the records kept in the repository, `parity.record.COMMITTED_RECORDS`).

>>> find_records("no/such/dir")
Traceback (most recent call last):
...
parity.record.RecordError: no/such/dir holds no parity records; make them with `python -m parity record SCENARIO --out no/such/dir`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parity import provenance
from parity.harness import (
    SCENARIOS,
    Mutation,
    ParityUsageError,
    Prepared,
    ScenarioResult,
    prepare_tables,
    run_scenario,
    split_tables,
)
from parity.record import (
    COMMITTED_RECORDS,
    Record,
    RecordError,
    config_json,
    fingerprint,
    read_record,
    same_columns,
)
from torchrs.data import movielens

DEFAULT_REPORT = "reports/parity-replay"


def _config_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    names = list(dict.fromkeys([*recorded, *current]))
    return [
        f"{name}: recorded {recorded.get(name, '(absent)')!r}, now {current.get(name, '(absent)')!r}"
        for name in names
        if recorded.get(name) != current.get(name)
    ]


def _record_again(record: Record, data: str) -> str:
    if record.path.resolve().parent == COMMITTED_RECORDS:
        return "`make records` (it re-records the full-size records kept in parity/records), then commit them"
    epochs = f" --epochs {record.epochs}" if record.epochs is not None else ""
    return (
        f"python -m parity record {record.scenario} --data {data} --scale {record.scale:g}{epochs} "
        f"--out {record.path.parent}"
    )


def check_record(record: Record, data_dir: str | None = None) -> Prepared:
    """The record's scenario, prepared from its stored split, after checking it still describes the scenario.

    Args:
        record: a record read with `parity.record.read_record`.
        data_dir: the data the record must have been made from; None: the record's own source when it can be
            read here (the synthetic set, or a directory that exists), else the stored split is trusted as is.

    Raises:
        RecordError: an unknown scenario, a configuration that differs from the scenario's current one, TF-side
            code that changed since the recording, or data that differs from ``data_dir``'s split.
    """
    if record.scenario not in SCENARIOS:
        raise RecordError(
            f"{record.path} records scenario {record.scenario!r}, which this torchrs does not have "
            f"({', '.join(SCENARIOS)})."
        )
    try:
        prepared = prepare_tables(record.scenario, record.tables, record.epochs, record.scale)
    except KeyError as err:  # the scenario reads a column the record did not store
        raise RecordError(
            f"{record.path} lacks data the {record.scenario} scenario reads now ({err}): the scenario changed "
            f"since. Record it again: {_record_again(record, record.data_source)}"
        ) from err
    differences = _config_differences(record.config, config_json(prepared.config))
    if differences:
        raise RecordError(
            f"{record.path} was made with another {record.scenario} configuration ("
            f"{'; '.join(differences)}): the scenario changed since. Record it again: "
            f"{_record_again(record, record.data_source)}"
        )
    changed = provenance.differences(record.tf_side, provenance.tf_side_sources(record.scenario))
    if changed:
        raise RecordError(
            f"{record.path} is stale: the code of the {record.scenario} scenario's TF side changed since it was "
            f"recorded ({'; '.join(changed)}), so its TF run may no longer be what the scenario gives. Record "
            f"it again: {_record_again(record, record.data_source)}"
        )
    source = data_dir
    if source is None and (
        record.data_source == movielens.SYNTHETIC or os.path.isdir(record.data_source)
    ):
        source = record.data_source
    if source is not None:
        current = fingerprint(
            same_columns(split_tables(record.scenario, source, record.scale), record.tables)
        )
        if current != record.data_fingerprint:
            why = (
                "the synthetic MovieLens or the tutorial split changed since"
                if source == record.data_source == movielens.SYNTHETIC
                else "other ratings, or another order"
            )
            raise RecordError(
                f"{record.path} was made with other data: its split (--data {record.data_source!r}, scale "
                f"{record.scale:g}) has fingerprint {record.data_fingerprint[:12]}..., --data {source!r} gives "
                f"{current[:12]}... here ({why}). Replay with the data it was made from, or record it again: "
                f"{_record_again(record, source)}"
            )
    return prepared


def replay_record(
    record: Record,
    *,
    device: str = "cpu",
    mutation: Mutation | None = None,
    data_dir: str | None = None,
    prepared: Prepared | None = None,
) -> ScenarioResult:
    """Runs the torchrs side against ``record`` and checks it exactly as ``parity run`` does.

    ``prepared`` is what `check_record` returned for this record (checked once, not twice).

    Raises:
        RecordError: the record no longer describes the scenario (see `check_record`).
    """
    prepared = prepared or check_record(record, data_dir)
    result = run_scenario(
        record.scenario,
        device=device,
        mutation=mutation,
        tf_run=record.tf_run,
        prepared=prepared,
    )
    result.config["record"] = record.describe()
    return result


def write_report(results: Sequence[ScenarioResult], directory: str | Path) -> Path:
    """`parity.report.write`'s files (``report.md``, ``figures.json``, loss-curve PNGs); on a torch-only machine
    without matplotlib the PNGs are left out (and said so) rather than the whole report."""
    import importlib.util
    import json

    from parity import report

    if importlib.util.find_spec("matplotlib") is not None:
        return report.write(results, directory)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(report.figures(results), indent=2, default=float))
    text = report.markdown(results) + "\nLoss curves not drawn: matplotlib is not installed here.\n"
    (out / "report.md").write_text(text)
    print("note: matplotlib is not installed; the report has no loss-curve PNGs", file=sys.stderr)
    return out / "report.md"


def find_records(path: str | Path, scenarios: Sequence[str] = ()) -> list[Path]:
    """The record directories in ``path`` (``path`` itself when it is one), restricted to ``scenarios`` if given.

    Raises:
        RecordError: no record there, or a requested scenario without a record.
    """
    root = Path(path)
    if (root / "record.json").is_file():
        found = {root.name: root}
    elif root.is_dir():
        found = {p.name: p for p in sorted(root.iterdir()) if (p / "record.json").is_file()}
    else:
        found = {}
    if not found:
        raise RecordError(
            f"{path} holds no parity records; make them with `python -m parity record SCENARIO --out {path}`."
        )
    if not scenarios:
        return list(found.values())
    missing = [s for s in scenarios if s not in found]
    if missing:
        raise RecordError(
            f"{path} has no record of {', '.join(missing)} (it has {', '.join(found)}); make them with "
            f"`python -m parity record {' '.join(missing)} --out {path}`."
        )
    return [found[s] for s in dict.fromkeys(scenarios)]


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``python -m parity replay`` arguments."""
    from parity.mutations import MUTATIONS

    parser.add_argument(
        "records", metavar="DIR", help="a records directory or one scenario's record"
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="scenarios to replay (default: every record in DIR)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torchrs device")
    parser.add_argument(
        "--report", default=DEFAULT_REPORT, help=f"report directory (default: {DEFAULT_REPORT})"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="check that the records were made from this MovieLens directory (default: the recorded "
        "source, where it can be read here)",
    )
    parser.add_argument(
        "--mutation",
        default=None,
        choices=sorted(MUTATIONS),
        help="inject a deliberate bug into the torchrs side (parity.mutations): the replay must then FAIL",
    )


def run(args: argparse.Namespace) -> int:
    """``python -m parity replay``: 0 when every check passes, 1 when one fails, 2 for a usage error."""
    from parity import report
    from parity.mutations import MUTATIONS

    try:
        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ParityUsageError(
                    "--device cuda: torch sees no CUDA device here; use --device cpu."
                )
        records = [read_record(p) for p in find_records(args.records, args.scenarios)]
        # Check every record before the first one spends minutes training.
        prepared = [check_record(record, args.data) for record in records]
    except ParityUsageError as err:
        print(f"parity: error: {err}", file=sys.stderr)
        return 2
    mutation = MUTATIONS[args.mutation] if args.mutation else None
    results = []
    for record, ready in zip(records, prepared, strict=True):
        print(f"replaying {record.scenario} on {args.device} ...", flush=True)
        results.append(replay_record(record, device=args.device, mutation=mutation, prepared=ready))
    path = write_report(results, args.report)
    print(report.console(results))
    failed = [c for r in results for c in r.failures()]
    print(f"\n{'FAIL' if failed else 'PASS'}: {len(failed)} failed check(s). Report: {path}")
    return 1 if failed else 0
