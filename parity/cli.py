"""``python -m parity run [SCENARIO ...] [--data DIR] [--device cpu|cuda] [--epochs N] [--report DIR] [--scale F]
[--independent [--seeds S1,S2,...]]``,
``python -m parity record [SCENARIO ...] [--out DIR] [--data DIR] [--epochs N] [--scale F]`` (see `parity.record`),
``python -m parity replay DIR [SCENARIO ...] [--device cpu|cuda] [--report DIR] [--data DIR] [--mutation NAME]``
(see `parity.replay`) and
``python -m parity validate TF_MODEL_DIR TORCHRS_DIR [--inputs FILE] [--report DIR] [--k K] [--num-samples N]
[--seed S] [--rtol R] [--atol A]`` (see `parity.validate`).

Exit status: 0 when every check passes, 1 when a check fails, 2 for a usage error (printed as one line).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torchrs.data import movielens

DEFAULT_REPORT = "reports/parity"
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    from parity.harness import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="python -m parity",
        description="Runs MovieLens scenarios in TFRS and torchrs in lock-step and checks they agree.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run scenarios in lock-step and write a report")
    run.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"scenarios to run (default: all available: {', '.join(SCENARIOS)})",
    )
    run.add_argument(
        "--data",
        default=movielens.SYNTHETIC,
        help="MovieLens directory (raw ml-100k / ml-1m / ml-latest-small, or tfds-prepared); "
        "default: the embedded synthetic set",
    )
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torchrs device")
    run.add_argument("--epochs", type=int, default=None, help="override the tutorial's epochs")
    run.add_argument("--report", default=DEFAULT_REPORT, help="report directory")
    run.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the 80k/20k split and of the batch sizes (0 < F <= 1)",
    )
    run.add_argument(
        "--independent",
        action="store_true",
        help="each framework initialises on its own over several seeds; final metrics must be equivalent: the "
        "90%% Welch interval of the gap within a per-metric margin (TOST) and no significant Welch difference "
        "(see parity.independent)",
    )
    run.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds for --independent (default: 0,1,2,3,4,5)",
    )
    from parity import validate

    checker = commands.add_parser(
        "validate",
        help="compare a TF model with its converted torchrs checkpoint on the same inputs",
        description="Runs a TFRS / Keras model (SavedModel or .keras) and its torchrs conversion "
        "(python -m converters.tfrs_to_torch) on the same inputs and reports the largest absolute / "
        "relative differences of their outputs and, for an index, how many queries get the same top-K "
        "identifiers (ties aside). Writes report.md, figures.json and inputs.json into --report.",
        epilog=validate.HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_arguments(checker)
    from parity import record, replay

    recorder = commands.add_parser(
        "record",
        help="run the TF side once and store it (weights, batches, losses, outputs) for `replay`",
        description="Runs the TFRS side of each scenario and writes a record per scenario into --out: "
        "initial and final weights, the split the batches are cut from, per-step losses, evaluation "
        "metrics, top-K outputs and predictions (safetensors + JSON), with the TF / TFRS / Keras versions "
        "and the CPU. `python -m parity replay DIR` checks torchrs against it without TensorFlow.",
    )
    record.add_arguments(recorder, list(SCENARIOS))
    replayer = commands.add_parser(
        "replay",
        help="check torchrs against records made by `record` (no TensorFlow needed)",
        description="Runs the torchrs side of each recorded scenario and checks it against the record "
        "with the checks and tolerances of `run`; refuses a record whose scenario configuration or data "
        "differ from today's.",
    )
    replay.add_arguments(replayer)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    from parity import report
    from parity.harness import SCENARIOS, ParityUsageError, prepare, run_scenario

    args = _parser().parse_args(argv)
    if args.command == "validate":
        from parity import validate

        return validate.run(args)
    if args.command == "record":
        from parity import record

        return record.run(args, list(SCENARIOS))
    if args.command == "replay":
        from parity import replay

        return replay.run(args)
    scenarios = list(dict.fromkeys(args.scenarios)) or list(SCENARIOS)
    try:
        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ParityUsageError(
                    "--device cuda: torch sees no CUDA device here; use --device cpu."
                )
        seeds: tuple[int, ...] = ()
        if args.independent:
            from parity.independent import DEFAULT_SEEDS, check_seeds

            try:
                raw = DEFAULT_SEEDS if args.seeds is None else args.seeds.split(",")
                seeds = check_seeds([int(s) for s in raw])
            except ValueError as err:
                if isinstance(err, ParityUsageError):
                    raise
                raise ParityUsageError(
                    f"--seeds must be comma-separated integers (got {args.seeds!r})."
                ) from err
        # Validate every scenario and the data before spending minutes on the first one.
        prepared = [prepare(name, args.data, args.epochs, args.scale) for name in scenarios]
    except ParityUsageError as err:
        print(f"parity: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    results = []
    for p in prepared:
        print(f"running {p.scenario} ...", flush=True)
        if args.independent:
            from dataclasses import asdict

            from parity.independent import run_independent

            outcome = run_independent(
                p.scenario,
                seeds=seeds,
                data_dir=args.data,
                device=args.device,
                epochs=args.epochs,
                scale=args.scale,
            )
            config = {**asdict(p.config), "scale": p.scale}
            results.append(outcome.as_scenario_result(config))
        else:
            results.append(run_scenario(p.scenario, device=args.device, prepared=p))
    path = report.write(results, args.report)
    print(report.console(results))
    failed = [c for r in results for c in r.failures()]
    print(f"\n{'FAIL' if failed else 'PASS'}: {len(failed)} failed check(s). Report: {path}")
    return EXIT_FAILED if failed else 0
