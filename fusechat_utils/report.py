"""One self-contained HTML report of a run or a sweep: every executed step notebook, plus the analysis notebooks
executed on it, in one file with a table of contents, its tables and its figures inline (no network needed).

Usage:
    fusechat report --run-dir outputs/toy        # -> outputs/toy/report.html (`make demo` ends with this)

`--run-dir` is a run (`<run>/<NN_step>/<NN_step>.ipynb`, as `fusechat run` writes) or a sweep folder holding runs
(`<sweep>/seed<k>/`, `<sweep>/<variant>-seed<k>/`). The analysis notebooks run with papermill into
`<run-dir>/analysis/` first: `dataset_composition` once per distinct data (runs whose steps 01-04 wrote the same
outputs share it, as the seeds of `make demo` do when 04 does not depend on the seed), `benchmark_tables` per run,
`ablations` once over a sweep. An executed analysis notebook is reused when its fingerprint (its cells, the kit code
they can run, packages, parameters, and the recorded outputs of every step of the runs it reads) is the one stored
beside it (`.<name>.fingerprint.json`, written after a run without error), as `fusechat run` reuses steps. The HTML
comes from nbconvert's HTMLExporter (lab template) over one notebook made of all of them, each under its own heading;
the template drops the CDN scripts (require.js, MathJax, mermaid) so the file opens offline, and plots are already
PNGs inside the executed notebooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.errors import UserError
from fusechat_utils.io import atomic_path, hash_obj, read_json, write_json
from fusechat_utils.provenance import package_versions, step_code
from fusechat_utils.runner import KERNEL_ARGS, notebook_hash
from fusechat_utils.steps import NOTEBOOKS_DIR, STEPS

ANALYSIS_DIR = NOTEBOOKS_DIR / "analysis"
DATA_STEPS = ("01_prompts", "02_sampling", "03_scoring", "04_pairs")

# lab's page without its CDN scripts: the report must open offline, and nothing in these notebooks needs MathJax,
# widgets or mermaid. The extends resolves to nbconvert's lab/index.html.j2 through the lab template's search path.
TEMPLATE_NAME = "fusechat_report.html.j2"
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
  h1.report-section { border-top: 3px solid #888; padding-top: 0.6em; margin-top: 2em; }
  nav.report-toc a { text-decoration: none; }
</style>
{%- endblock extra_css -%}
"""


class ReportError(UserError):
    """No run under --run-dir, or an analysis notebook that failed (the report is still written)."""


@dataclass
class Section:
    anchor: str  # the HTML id the table of contents links to
    title: str  # its heading
    notebook: Path  # an executed notebook
    group: str  # the table of contents' line it sits on
    link: str  # its link's text there


def shown(path: Path) -> str:
    """A path as the report prints it: from the project root when under it (outputs/toy/seed0/...)."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def natural_key(path: Path) -> list:
    """seed2 before seed10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def is_run(folder: Path) -> bool:
    return any((folder / step / f"{step}.ipynb").is_file() for step in STEPS)


def find_runs(root: Path) -> list[Path]:
    """`root` itself when it is a run, else the runs directly under it (a sweep), in natural order."""
    if is_run(root):
        return [root]
    runs = sorted((p for p in root.iterdir() if p.is_dir() and is_run(p)), key=natural_key) if root.is_dir() else []
    if not runs:
        raise ReportError(f"--run-dir {root}: no executed step notebook (<run>/<NN_step>/<NN_step>.ipynb) in it or "
                          "in its subfolders; run `fusechat run` or `fusechat sweep` first")
    return runs


def step_sections(run: Path, label: str) -> list[Section]:
    return [Section(f"{label}-{step}", f"{label} · {step}", run / step / f"{step}.ipynb", label, step)
            for step in STEPS if (run / step / f"{step}.ipynb").is_file()]


def data_key(run: Path) -> tuple:
    """What steps 01-04 wrote (their manifests' output hashes): runs with the same key have the same data."""
    manifests = [run / step / "manifest.json" for step in DATA_STEPS]
    return tuple(read_json(m).get("outputs_hash") if m.is_file() else str(run) for m in manifests)


def execute_analysis(name: str, out: Path, parameters: dict) -> str | None:
    """Run notebooks/analysis/<name>.ipynb into `out`; the error line when it fails (`out` then shows where)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(ANALYSIS_DIR / f"{name}.ipynb"), str(out), parameters=parameters,
                                   kernel_name="python3", cwd=str(PROJECT_ROOT), progress_bar=False,
                                   log_output=False, extra_arguments=KERNEL_ARGS)
    except PapermillExecutionError as err:
        return f"{out}: cell {err.cell_index}: {err.ename}: {err.evalue}"
    return None


def analysis_fingerprint(name: str, parameters: dict, reads: list[Path]) -> str:
    """What an executed analysis notebook depends on (see the module docstring)."""
    notebook = ANALYSIS_DIR / f"{name}.ipynb"
    outputs = {str(run): [read_json(run / step / "manifest.json").get("outputs_hash")
                          if (run / step / "manifest.json").is_file() else None for step in STEPS] for run in reads}
    return hash_obj({"notebook": notebook_hash(notebook), "code": step_code(notebook), "packages": package_versions(),
                     "parameters": parameters, "outputs": outputs})


def fingerprint_file(out: Path) -> Path:
    return out.with_name(f".{out.stem}.fingerprint.json")


def analysis_jobs(root: Path, runs: list[Path], labels: dict[Path, str]) -> list[tuple[str, Path, dict, str, list]]:
    """(analysis notebook, executed notebook, parameters, title, the runs it reads) for what the runs hold:
    composition where 04 wrote its sets (once per distinct 01-04 outputs), benchmark tables where 07 wrote results,
    and the seed spread over a sweep."""
    sweep = runs != [root]  # a sweep's analysis goes per run into <sweep>/analysis/<run>/, a run's into <run>/analysis/
    folder = {run: root / "analysis" / (labels[run] if sweep else "") for run in runs}
    jobs = []
    evaluated = [run for run in runs if (run / "07_eval" / "results.csv").is_file()]
    if sweep and evaluated:
        jobs.append(("ablations", root / "analysis" / "ablations.ipynb", {"sweep_dir": str(root)},
                     "seed spread and variants", runs))
    by_data: dict[tuple, list[Path]] = {}
    for run in runs:
        if (run / "04_pairs" / "dpo.parquet").is_file():
            by_data.setdefault(data_key(run), []).append(run)
    for first, *same in by_data.values():
        shared = f"; same 01-04 outputs as {', '.join(labels[r] for r in same)}" if same else ""
        jobs.append(("dataset_composition", folder[first] / "dataset_composition.ipynb", {"run_dir": str(first)},
                     labels[first] + shared, [first]))
    for run in evaluated:
        jobs.append(("benchmark_tables", folder[run] / "benchmark_tables.ipynb", {"run_dir": str(run)}, labels[run],
                     [run]))
    return jobs


def analysis_sections(root: Path, runs: list[Path], labels: dict[Path, str], log) -> tuple[list[Section], list[str]]:
    """Execute the analysis notebooks into <root>/analysis/; their sections and the errors of those that failed."""
    sections, errors = [], []
    for name, out, parameters, title, reads in analysis_jobs(root, runs, labels):
        fingerprint, stored = analysis_fingerprint(name, parameters, reads), fingerprint_file(out)
        if out.is_file() and stored.is_file() and read_json(stored).get("fingerprint") == fingerprint:
            log(f"report: reusing analysis/{name}.ipynb ({title}): unchanged since {out}", flush=True)
        else:
            log(f"report: running analysis/{name}.ipynb ({title}) -> {out}", flush=True)
            stored.unlink(missing_ok=True)
            error = execute_analysis(name, out, parameters)
            if error:
                errors.append(error)
            else:
                write_json(stored, {"fingerprint": fingerprint})
        where = out.relative_to(root / "analysis").with_suffix("")  # ablations, benchmark_tables, seed0/...
        anchor = re.sub(r"[^A-Za-z0-9_-]+", "-", f"analysis-{where}")
        sections.append(Section(anchor, f"analysis · {name} · {title}", out, "analysis", f"{name} ({title})"))
    return sections, errors


def section_cells(section: Section) -> list:
    """The heading cell that the table of contents links to, then the notebook's cells.

    The notebook's `parameters` cell is left out when papermill injected the run's values after it: the injected
    cell is what ran, the defaults above it would only mislead.
    """
    import nbformat

    nb = nbformat.read(section.notebook, as_version=4)
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    cells = [c for c in nb.cells if not (injected and "parameters" in c.metadata.get("tags", []))]
    heading = nbformat.v4.new_markdown_cell(
        f'<h1 class="report-section" id="{section.anchor}">{escape(section.title)}</h1>\n\n'
        f"Executed notebook: `{shown(section.notebook)}` · [contents](#contents)")
    for i, cell in enumerate([heading, *cells]):
        cell["id"] = f"{section.anchor}-{i}"[:64]  # one notebook, so cell ids (HTML ids too) must stay unique
    return [heading, *cells]


def contents_cell(root: Path, sections: list[Section]):
    """Title, provenance line and the table of contents, grouped by run (then analysis)."""
    import nbformat

    lines = [f'<h1 id="contents">fusechat report: {escape(shown(root))}</h1>', "",
             f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `fusechat report`; "
             "each section is one executed notebook.", "", '<nav class="report-toc">', ""]
    groups: dict[str, list[Section]] = {}
    for section in sections:
        groups.setdefault(section.group, []).append(section)
    for group, members in groups.items():
        links = ", ".join(f'<a href="#{s.anchor}">{escape(s.link)}</a>' for s in members)
        lines.append(f"<p><b>{escape(group)}</b>: {links}</p>")
    lines += ["", "</nav>"]
    return nbformat.v4.new_markdown_cell("\n".join(lines))


def render_html(cells: list, title: str) -> str:
    """One notebook of all the cells, through nbconvert's HTMLExporter (lab template, no CDN scripts)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "title": title, "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    # CoalesceStreams applies the progress bars' carriage returns, as a notebook front end does: one line per bar
    # in its final state instead of one per update.
    exporter = HTMLExporter(template_name="lab", template_file=TEMPLATE_NAME, embed_images=True,
                            extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})],
                            config=Config({"CoalesceStreamsPreprocessor": {"enabled": True}}))
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def build_report(run_dir: str | Path, out: str | Path | None = None, log=print) -> Path:
    """Execute the analysis notebooks on `run_dir` (a run or a sweep) and write the HTML report; its path.

    Raises ReportError after writing the report when an analysis notebook failed (its section shows the error).
    """
    root = (PROJECT_ROOT / run_dir).resolve()
    runs = find_runs(root)
    labels = {run: run.name for run in runs}
    sections = [s for run in runs for s in step_sections(run, labels[run])]
    extra, errors = analysis_sections(root, runs, labels, log)
    sections += extra
    cells = [contents_cell(root, sections), *(c for s in sections for c in section_cells(s))]
    out = Path(out) if out else root / "report.html"
    with atomic_path(out) as tmp:
        tmp.write_text(render_html(cells, f"fusechat report: {root.name}"), encoding="utf-8")
        tmp.chmod(0o644)  # a page to open and share, like the executed notebooks (the temporary file is 0600)
    if errors:
        raise ReportError(f"report written to {out}, but analysis notebook(s) failed: " + "; ".join(errors))
    return out
