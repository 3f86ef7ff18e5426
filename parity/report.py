"""The parity report: ``report.md`` (one table), ``<scenario>/loss_curves.png``, ``figures.json``, console table."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parity.harness import Check, FrameworkRun, ScenarioResult
from torchrs.config import machine_record, machine_summary

# Environment variables that change how fast torch's CPU memory comes back (see the README's Speed section).
ALLOCATOR_SETTINGS = (
    "THP_MEM_ALLOC_ENABLE",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "LD_PRELOAD",
)


def _machine() -> dict[str, Any]:
    """Where the figures were measured, with any allocator settings of the environment."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "allocator": {k: os.environ[k] for k in ALLOCATOR_SETTINGS if k in os.environ},
        "record": machine_record(),  # CPU, BLAS / oneDNN, threads, settings, load average
    }


def _machine_line() -> str:
    m = _machine()
    settings = ", ".join(f"{k}={v}" for k, v in m["allocator"].items()) or "default allocator"
    return (
        f"Machine: {m['platform']}, Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads, "
        f"{settings}). {machine_summary(m['record'])}."
    )


def _fmt(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.4e}"
    return f"{value:.6g}"


def _row(c: Check) -> list[str]:
    return [
        c.scenario,
        c.check,
        _fmt(c.tfrs),
        _fmt(c.torchrs),
        _fmt(c.difference),
        c.tolerance,
        "pass" if c.passed else "**FAIL**",
    ]


def _throughput(run: FrameworkRun) -> dict[str, Any]:
    return {
        "device": run.device,
        "train_examples_per_second": run.train_examples_per_second,
        "eval_examples_per_second": run.eval_examples_per_second,
    }


def figures(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """Every number of the run, as plain JSON types."""
    out: dict[str, Any] = {
        "machine": _machine(),
        "passed": all(r.passed for r in results),
        "scenarios": {},
    }
    for r in results:
        out["scenarios"][r.scenario] = {
            "passed": r.passed,
            "mutation": r.mutation,
            "config": r.config,
            "checks": [asdict(c) for c in r.checks],
            "loss": {"tfrs": r.tf_run.step_losses, "torchrs": r.torch_run.step_losses},
            "throughput": {"tfrs": _throughput(r.tf_run), "torchrs": _throughput(r.torch_run)},
            "metrics": {"tfrs": r.tf_run.metrics, "torchrs": r.torch_run.metrics},
        }
    return out


def markdown(results: Sequence[ScenarioResult]) -> str:
    """``report.md``: the checks table, then throughput and the reasons behind each tolerance."""
    header = ["scenario", "check", "TFRS", "torchrs", "difference", "tolerance", "result"]
    independent = any(r.config.get("mode") == "independent" for r in results)
    lines = [
        f"# torchrs parity report ({'independent' if independent else 'lock-step'})",
        "",
        (
            "TFRS 0.7.7 is the reference. Each framework initialises on its own over several seeds; the final "
            "metrics pass when the 90% Welch interval of the gap lies inside a per-metric margin (TOST) and "
            "Welch's test finds no significant difference (parity/independent.py)."
            if independent
            else "TFRS 0.7.7 is the reference. Both frameworks start from the TF model's initial weights and "
            "train on the identical batches in the identical order."
        ),
        "",
        f"Overall: **{'PASS' if all(r.passed for r in results) else 'FAIL'}**",
        "",
        "| " + " | ".join(header) + " |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        for c in r.checks:
            lines.append("| " + " | ".join(_row(c)) + " |")
    lines += [
        "",
        "## Throughput (examples/s, first step excluded as warm-up)",
        "",
        "| scenario | framework | device | train | evaluate |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in results:
        for run in (r.tf_run, r.torch_run):
            lines.append(
                f"| {r.scenario} | {run.framework} | {run.device} | "
                f"{run.train_examples_per_second:,.0f} | {run.eval_examples_per_second:,.0f} |"
            )
    lines += ["", "## Configurations and tolerances", ""]
    for r in results:
        lines.append(f"- **{r.scenario}**: {r.config}; loss curves: `{r.scenario}/loss_curves.png`")
        seen = set()
        for c in r.checks:
            if c.reason not in seen:
                seen.add(c.reason)
                lines.append(f"  - {c.tolerance}: {c.reason}")
    lines.append(f"\n{_machine_line()}")
    return "\n".join(lines) + "\n"


def plot_losses(result: ScenarioResult, path: Path) -> None:
    """Both loss curves on one chart, the per-step difference (torchrs - TFRS) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tf_loss = np.asarray(result.tf_run.step_losses, np.float64)
    torch_loss = np.asarray(result.torch_run.step_losses, np.float64)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[2, 1])
    top.plot(np.arange(len(tf_loss)), tf_loss, "o-", label="TFRS", linewidth=2)
    top.plot(np.arange(len(torch_loss)), torch_loss, "x--", label="torchrs")
    top.set_ylabel("training loss (batch)")
    top.set_title(f"{result.scenario}: training loss")
    top.legend()
    n = min(len(tf_loss), len(torch_loss))
    bottom.plot(np.arange(n), torch_loss[:n] - tf_loss[:n], "o-", color="tab:red")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_xlabel("step")
    bottom.set_ylabel("torchrs - TFRS")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: Sequence[ScenarioResult], directory: str | Path) -> Path:
    """Writes the report files into ``directory``; returns the path of ``report.md``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        plot_losses(r, out / r.scenario / "loss_curves.png")
    (out / "figures.json").write_text(json.dumps(figures(results), indent=2, default=float))
    report = out / "report.md"
    report.write_text(markdown(results))
    return report


def console(results: Sequence[ScenarioResult]) -> str:
    """A compact fixed-width table for the terminal."""
    rows = [["scenario", "check", "TFRS", "torchrs", "diff", "tol", ""]]
    for r in results:
        for c in r.checks:
            row = _row(c)
            row[-1] = "ok" if c.passed else "FAIL"
            row[1] = row[1] if len(row[1]) <= 52 else row[1][:49] + "..."
            rows.append(row)
        tf_run, torch_run = r.tf_run, r.torch_run
        for what in ("train", "eval"):
            rows.append(
                [
                    r.scenario,
                    f"{what} examples/s (torchrs on {torch_run.device})",
                    f"{getattr(tf_run, f'{what}_examples_per_second'):,.0f}",
                    f"{getattr(torch_run, f'{what}_examples_per_second'):,.0f}",
                    "",
                    "",
                    "",
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# ------------------------------------------------------------------------------------------ generic check tables
# Used by ``python -m parity validate``: the same table, for checks that come without training runs.
CHECKS_HEADER = ["scenario", "check", "TFRS", "torchrs", "difference", "tolerance", "result"]


def _cell(text: str) -> str:
    """A Markdown table cell: ``|`` (as in ``max |difference|``) escaped so the cell stays whole."""
    return text.replace("|", "\\|")


def checks_markdown(
    checks: Sequence[Check], title: str, intro: Sequence[str] = (), sections: Sequence[str] = ()
) -> str:
    """A report with the checks table of :func:`markdown`, the reasons behind each tolerance, and extra sections."""
    passed = all(c.passed for c in checks)
    lines = [f"# {title}", "", *intro, "", f"Overall: **{'PASS' if passed else 'FAIL'}**", ""]
    lines += [
        "| " + " | ".join(CHECKS_HEADER) + " |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in _row(c)) + " |" for c in checks]
    lines += ["", "## Tolerances", ""]
    seen: set[str] = set()
    for c in checks:
        if c.reason not in seen:
            seen.add(c.reason)
            lines.append(f"- {_cell(c.tolerance)}: {c.reason}")
    lines += ["", *sections]
    lines.append(f"\n{_machine_line()}")
    return "\n".join(lines) + "\n"


def write_checks(
    checks: Sequence[Check],
    directory: str | Path,
    *,
    title: str,
    intro: Sequence[str] = (),
    sections: Sequence[str] = (),
    figures: dict[str, Any] | None = None,
) -> Path:
    """Writes ``report.md`` (:func:`checks_markdown`) and ``figures.json`` into ``directory``; returns ``report.md``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": _machine(),
        "passed": all(c.passed for c in checks),
        **(figures or {}),
    }
    (out / "figures.json").write_text(json.dumps(payload, indent=2, default=float))
    report = out / "report.md"
    report.write_text(checks_markdown(checks, title, intro, sections))
    return report


def console_checks(checks: Sequence[Check]) -> str:
    """The compact fixed-width table of :func:`console`, for checks alone."""
    rows = [["scenario", "check", "TFRS", "torchrs", "diff", "tol", ""]]
    for c in checks:
        row = _row(c)
        row[-1] = "ok" if c.passed else "FAIL"
        row[1] = row[1] if len(row[1]) <= 64 else row[1][:61] + "..."
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
