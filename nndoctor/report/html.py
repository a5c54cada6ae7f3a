"""The HTML report: one self-contained file to open in a browser or attach to a ticket.

Read in the console report's order: the diagnosis first (the causes, each with the
findings it explains, from ``report.diagnosis``), then every finding with its evidence and
fix (``report.findings``, already ordered by the diagnosis), then the charts drawn from the
run's series (PNG, embedded as base64 data), then every check's status and the run's
details. No script, no external asset: it reads the same with JavaScript off and offline.
Every string that came from the user's code or the checks goes through ``html.escape``.
It only formats; nothing here diagnoses.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nndoctor.report.github import relative_path
from nndoctor.report.model import Finding, Report, Status
from nndoctor.report.plots import NOTHING_TO_PLOT, Chart, charts
from nndoctor.report.series import RunSeries

if TYPE_CHECKING:
    from nndoctor.watch.report import WatchReport

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0 auto; max-width: 1100px; padding: 1.2em 1.6em 3em; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5em; margin: 0.2em 0; }
h2 { font-size: 1.2em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin: 0 0 0.3em; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.counts { font-size: 1.05em; margin: 0.4em 0 0.8em; }
.facts { margin: 0; padding-left: 1.2em; color: #414a54; }
.badge { display: inline-block; border-radius: 4px; padding: 0 0.45em; font-size: 0.8em;
  font-weight: 600; color: #fff; vertical-align: 0.1em; }
.error { background: #c62828; } .warning { background: #b85c00; } .info { background: #0277bd; }
.passed { background: #2e7d32; } .failed { background: #c62828; } .skipped { background: #6e7781; }
.crashed { background: #8e24aa; } .none { background: #8c959f; }
.meta { color: #57606a; font-size: 0.88em; }
.diagnosis { border: 2px solid #1b1f24; border-radius: 6px; padding: 0.6em 1em; background: #f6f8fa; }
.diagnosis h2 { margin-top: 0.3em; }
.diagnosis ol { margin: 0.3em 0; padding-left: 1.4em; } .diagnosis li { margin: 0.35em 0; }
.finding { border-left: 5px solid #8c959f; background: #fafbfc; padding: 0.6em 1em; margin: 0.9em 0;
  border-radius: 0 6px 6px 0; }
.finding.sev-error { border-left-color: #c62828; } .finding.sev-warning { border-left-color: #ef6c00; }
.finding.sev-info { border-left-color: #0277bd; }
.finding p { margin: 0.35em 0; }
.fix { background: #e8f5e9; border-radius: 4px; padding: 0.3em 0.6em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.4em 0; }
th, td { border: 1px solid #d0d7de; padding: 0.2em 0.55em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.88em; }
.alarm { border: 2px solid #c62828; border-radius: 6px; padding: 0.6em 1em; background: #fff5f5; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
details summary { cursor: pointer; }
"""


def _e(value: Any) -> str:
    """Escaped text of ``value``, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def render(
    report: Report,
    *,
    series: RunSeries | None = None,
    drawn: list[Chart] | None = None,
    title: str | None = None,
) -> str:
    """The report as one HTML5 document. The charts are drawn from ``series`` (default:
    ``report.series``) unless already drawn ones are given in ``drawn``."""
    run = report.run
    target = " ".join([run.target, *run.argv]) if run.argv else run.target
    if drawn is None:
        series = series if series is not None else report.series
        drawn = charts(series) if series is not None else []
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title or 'nndoctor: ' + target)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>nndoctor: <code>{_e(target)}</code></h1>",
        _counts(report),
        _facts(report),
        "</header>",
        "<main>",
    ]
    if not run.observed:
        parts.append(_not_observed(report))
    parts.append(_diagnosis(report.diagnosis))
    parts.append(_findings(report.findings))
    parts.append(_charts(drawn))
    parts.append(_checks(report))
    parts.append(_run_info(report))
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(p for p in parts if p) + "\n"


def write(report: Report, path: str | Path, **kwargs: Any) -> None:
    """Write :func:`render`'s document to ``path``."""
    Path(path).write_text(render(report, **kwargs), encoding="utf-8")


def render_watch(
    report: WatchReport,
    *,
    target: str,
    facts: Iterable[str] = (),
    drawn: list[Chart] | None = None,
) -> str:
    """A watched run as one HTML5 document: its alerts in the order they were raised (each
    at its step), the charts of its series, and how it was sampled. ``facts`` are lines
    about the run (plain text) shown under the title."""
    if drawn is None:
        drawn = charts(report.series)
    alerts = report.alerts
    errors = sum(f.severity.value == "error" for f in alerts)
    warnings = sum(f.severity.value == "warning" for f in alerts)
    counts = (
        f'<p class="counts"><span class="badge {"error" if errors else "none"}">{errors} '
        f'error(s)</span> <span class="badge {"warning" if warnings else "none"}">{warnings} '
        f"warning(s)</span> {len(alerts) - errors - warnings} note(s) · "
        f"{report.steps_seen} steps watched, {report.steps_sampled} sampled</p>"
    )
    lines = [_e(f) for f in facts]
    lines.append(
        "sampling: "
        + ", ".join(f"every {k} from step {s}" for s, k in report.periods)
        + (f" (fixed, every {report.every})" if report.every else f" (budget {report.budget:.0%})")
    )
    if math.isfinite(report.overhead):
        lines.append(f"watch's own time: {report.overhead:.1%} of the steps' time (estimate)")
    if report.stopped:
        lines.append(f"stopped by {_e(report.stopped_by)}")
    lines += [f"note: {_e(n)}" for n in report.notes]
    lines += [f"watch's own hook failed and was disabled: {_e(c)}" for c in report.crashes]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e('nndoctor watch: ' + target)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>nndoctor watch: <code>{_e(target)}</code></h1>",
        counts,
        '<ul class="facts">' + "".join(f"<li>{x}</li>" for x in lines) + "</ul>",
        "</header>",
        "<main>",
        _findings(alerts, heading="Alerts"),
        _charts(drawn),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- sections ---------------------------------------------------------------------------


def _counts(report: Report) -> str:
    n = report.counts()
    # A zero count is grey: red and orange are for something found.
    errors = (
        f'<span class="badge {"error" if n["errors"] else "none"}">{n["errors"]} error(s)</span>'
    )
    warnings = (
        f'<span class="badge {"warning" if n["warnings"] else "none"}">'
        f"{n['warnings']} warning(s)</span>"
    )
    return (
        f'<p class="counts">{errors} {warnings} {n["infos"]} note(s) · checks: '
        f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, "
        f"{n['crashed']} crashed</p>"
    )


def _facts(report: Report) -> str:
    run, subj = report.run, report.subject
    facts = []
    if subj.get("model"):
        params = f"{subj.get('parameters', 0):,}"
        facts.append(
            f"model <code>{_e(subj.get('model'))}</code> · {_e(params)} parameters · "
            f"{_e(subj.get('device'))}"
        )
    if subj.get("task"):
        facts.append(f"task {_e(subj.get('task'))} · loss <code>{_e(subj.get('loss'))}</code>")
    if subj.get("optimizer"):
        facts.append(f"optimizer <code>{_e(subj.get('optimizer'))}</code>")
    facts.append(
        f"observed {run.steps_observed} of {run.step_budget} steps · stopped: "
        f"{_e(run.stop_reason)} · {run.seconds:.1f}s"
    )
    facts += [f"note: {_e(note)}" for note in run.notes]
    return '<ul class="facts">' + "".join(f"<li>{f}</li>" for f in facts) + "</ul>"


def _not_observed(report: Report) -> str:
    run = report.run
    out = ['<section class="alarm">', "<h2>The script could not be observed</h2>"]
    out.append(f"<p><strong>{_e(run.error or 'the script could not be observed')}</strong></p>")
    if run.likely_cause:
        reasons = ", ".join(str(r) for r in run.likely_reasons)
        out.append(
            f"<p>likely: {_e(run.likely_cause)}"
            + (f" (reasons {reasons})" if reasons else "")
            + "</p>"
        )
    if run.output_tail:
        out.append(f"<p>the script's last output:</p><pre>{_e(run.output_tail.rstrip())}</pre>")
    if run.traceback:
        out.append(f"<pre>{_e(run.traceback.rstrip())}</pre>")
    out.append("</section>")
    return "\n".join(out)


def _checks_list(checks: Iterable[str]) -> str:
    return ", ".join(f"<code>{_e(c)}</code>" for c in dict.fromkeys(checks))


def _diagnosis(diagnosis: Any) -> str:
    """The causes with what each explains, as the console shows them, or where to look next."""
    if diagnosis is None or diagnosis.empty:
        return ""
    heading = "Diagnosis" if diagnosis.causes else "Diagnosis: symptoms without a cause"
    out = ['<section class="diagnosis" id="diagnosis">', f"<h2>{heading}</h2>"]
    if diagnosis.causes:
        out.append("<ol>")
        for cause in diagnosis.causes:
            lead = cause.lead
            reasons = ", ".join(str(r) for r in lead.reasons)
            item = (
                f'<span class="badge {lead.severity.value}">{lead.severity.value}</span> '
                f"<strong>{_e(lead.title)}</strong> "
                f'<span class="meta"><code>{_e(lead.check)}</code> · reason {reasons} · '
                f"confidence {_e(cause.confidence)}</span>"
            )
            if cause.explains:
                item += (
                    "<br>explains "
                    + _checks_list(f.check for f in cause.explains)
                    + '<ul class="meta">'
                    + "".join(f"<li>{_e(f.title)}</li>" for f in cause.explains)
                    + "</ul>"
                )
            out.append(f"<li>{item}</li>")
        out.append("</ol>")
    if diagnosis.independent:
        label = "Symptoms, no cause found" if not diagnosis.causes else "Also found"
        out.append(
            f"<p><strong>{label}:</strong> "
            + _checks_list(f.check for f in diagnosis.independent)
            + "</p>"
        )
    if diagnosis.differential:
        out.append("<p><strong>Look next at, most likely first:</strong></p><ul>")
        for lead in diagnosis.differential[:5]:
            out.append(f"<li>reason {lead.reason}: {_e(lead.text)}</li>")
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _findings(findings: list[Finding], heading: str = "Findings") -> str:
    if not findings:
        return f'<section id="findings"><h2>{heading}</h2><p>None.</p></section>'
    out = ['<section id="findings">', f"<h2>{heading} ({len(findings)})</h2>"]
    out += [_finding(f) for f in findings]
    out.append("</section>")
    return "\n".join(out)


def _finding(f: Finding) -> str:
    sev = f.severity.value
    reasons = ", ".join(str(r) for r in f.reasons)
    role = f" · {_e(f.role)}" if f.role != "independent" else ""
    out = [
        f'<article class="finding sev-{sev}">',
        f'<h3><span class="badge {sev}">{sev.upper()}</span> {_e(f.title)}</h3>',
        f'<p class="meta"><code>{_e(f.check)}</code> · reasons {reasons}{role}</p>',
        f"<p>{_e(f.message)}</p>",
    ]
    # A file inside the working directory is shown relative to it, as in the Markdown report.
    file = relative_path(f.where.file) if f.where.file else None
    where = replace(f.where, file=file).describe()
    if where:
        out.append(f"<p><strong>where</strong> {_e(where)}</p>")
    out.append(f'<p class="fix"><strong>fix</strong> {_e(f.fix)}</p>')
    evidence = f.to_dict()["evidence"]
    if evidence:
        rows = "".join(
            f"<tr><th><code>{_e(k)}</code></th><td>{_e(_value(v))}</td></tr>"
            for k, v in evidence.items()
        )
        out.append(f"<details><summary>evidence</summary><table>{rows}</table></details>")
    out.append(
        f'<p class="meta"><code>nndoctor explain {_e(f.check)}</code> prints this check\'s manual.</p>'
    )
    out.append("</article>")
    return "\n".join(out)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, dict)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 400 else text[:399] + "…"
    return str(v)


def _charts(drawn: list[Chart]) -> str:
    out = ['<section id="charts">', "<h2>Charts</h2>"]
    if not drawn:
        out.append(f"<p>{_e(NOTHING_TO_PLOT.capitalize())}.</p>")
    for chart in drawn:
        data = base64.b64encode(chart.png).decode("ascii")
        # The title is drawn in the image; the caption says only what was left out.
        caption = f"<figcaption>{_e(chart.note)}</figcaption>" if chart.note else ""
        out.append(
            f'<figure id="chart-{_e(chart.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(chart.title)}">{caption}</figure>'
        )
    out.append("</section>")
    return "\n".join(out)


def _checks(report: Report) -> str:
    if not report.checks:
        return ""
    attention = [
        c
        for c in report.checks
        if c.status != Status.PASSED and not c.detail.startswith(("not selected", "ignored"))
    ]
    n = report.counts()
    out = [
        '<section id="checks">',
        f"<h2>Checks ({len(report.checks)}: {n['passed']} passed, {n['failed']} failed, "
        f"{n['skipped']} skipped, {n['crashed']} crashed)</h2>",
    ]
    if attention:
        out += ["<p>The checks that did not pass:</p>", _check_table(attention)]
    out += [
        f"<details><summary>all {len(report.checks)} checks</summary>",
        _check_table(report.checks),
        "</details>",
        "</section>",
    ]
    return "\n".join(out)


def _check_table(checks: list[Any]) -> str:
    rows = []
    for c in checks:
        reasons = ", ".join(str(r) for r in c.reasons)
        rows.append(
            f"<tr><td><code>{_e(c.check)}</code></td><td>{reasons}</td><td>{_e(c.kind)}</td>"
            f'<td><span class="badge {c.status.value}">{c.status.value}</span></td>'
            f"<td>{c.seconds:.2f}s</td><td>{_e(c.detail)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>check</th><th>reasons</th><th>kind</th><th>status</th>"
        "<th>time</th><th>detail</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _run_info(report: Report) -> str:
    run = report.run
    rows = [
        ("target", run.target),
        ("arguments", " ".join(run.argv) if run.argv else "none"),
        ("steps observed", f"{run.steps_observed} of {run.step_budget}"),
        ("stopped", run.stop_reason),
        ("seconds", f"{run.seconds:.1f}"),
    ]
    rows += [(f"time: {k}", f"{v:.2f}s") for k, v in report.timings.items()]
    rows += [(f"version: {k}", v) for k, v in report.versions.items()]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<section id="run"><h2>Run</h2><table>{body}</table></section>'
