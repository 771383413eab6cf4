"""The HTML report (`fusechat report`) of a sweep made of the session's toy run, opened in a real headless Chromium:
every notebook's section and heading is in the DOM, the table of contents resolves, tables and figures are laid
out, every image is an inline PNG the browser decoded, and a screenshot is not blank."""

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest
from PIL import Image

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.report import find_runs, step_sections

CHROMIUM = shutil.which("chromium")
# A headless browser that reaches nothing: no sync, no component updates, no first-run pages, its own profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Runs after every image has loaded: how the browser laid out each <img> and <table>, written into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const box = e => Math.round(e.getBoundingClientRect().height);
  const imgs = [...document.images].map(i => ({width: i.naturalWidth, height: box(i)}));
  const tables = [...document.querySelectorAll('table')].map(box);
  const out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify({imgs, tables});
  document.body.appendChild(out);
});
</script>"""


class DomIndex(HTMLParser):
    """The ids, links, image sources, table count and heading texts of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.imgs, self.headings, self.scripts = set(), [], [], [], []
        self.tables = 0
        self._heading = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        self.tables += tag == "table"
        if tag in ("h1", "h2"):
            self._heading = ""

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._heading is not None:
            self.headings.append(self._heading.replace("¶", "").strip())
            self._heading = None


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def first_heading(notebook) -> str:
    """The notebook's own title: the first markdown heading line."""
    nb = nbformat.read(notebook, as_version=4)
    lines = (line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines())
    return next(line.lstrip("#").strip() for line in lines if line.startswith("#"))


@pytest.fixture(scope="module")
def sweep_report(toy_run, tmp_path_factory):
    """A two-seed sweep folder made of copies of the toy run (no second pipeline run) and its report."""
    assert CHROMIUM, "chromium is not on PATH: `make test` installs it (Debian: apt-get install -y chromium)"
    run_dir, _ = toy_run
    sweep = tmp_path_factory.mktemp("report") / "toy"
    for seed in ("seed0", "seed1"):
        shutil.copytree(run_dir, sweep / seed, ignore=shutil.ignore_patterns("model", "checkpoint-*"))
    proc = subprocess.run([sys.executable, "-m", "fusechat_utils", "report", "--run-dir", str(sweep)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"report: {sweep / 'report.html'}")
    return sweep


@pytest.mark.slow
def test_report_sections_tables_and_images_render_in_chromium(sweep_report, tmp_path):
    report = sweep_report / "report.html"
    dom = DomIndex()
    dom.feed(chromium(tmp_path, "--dump-dom", report.as_uri()).stdout)

    # Every executed step notebook of both seeds and every analysis notebook has its section and its own title.
    sections = [s for run in find_runs(sweep_report) for s in step_sections(run, run.name)]
    assert len(sections) == 14
    analysis = sorted((sweep_report / "analysis").rglob("*.ipynb"))
    assert [p.relative_to(sweep_report / "analysis").as_posix() for p in analysis] == [
        "ablations.ipynb", "seed0/benchmark_tables.ipynb", "seed0/dataset_composition.ipynb",
        "seed1/benchmark_tables.ipynb"]  # seed1 has seed0's data: one composition for both
    for notebook in [s.notebook for s in sections] + analysis:
        assert first_heading(notebook) in dom.headings, notebook
    assert {s.anchor for s in sections} <= dom.ids
    assert set(dom.links) <= dom.ids and len(set(dom.links)) >= len(sections) + len(analysis)

    # Self-contained: no script from a CDN, every image inline, each a PNG that decodes.
    assert dom.scripts == []
    assert dom.tables >= 10 and len(dom.imgs) >= 12
    for src in dom.imgs:
        assert src.startswith("data:image/png;base64,"), src[:80]
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()

    # Laid out by the browser: every image decoded with a size, every table with a height.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dumped = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    laid_out = json.loads(dumped.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0])
    assert len(laid_out["imgs"]) == len(dom.imgs) and len(laid_out["tables"]) == dom.tables
    assert all(img["width"] > 0 and img["height"] > 0 for img in laid_out["imgs"]), laid_out["imgs"]
    assert all(height > 0 for height in laid_out["tables"]), laid_out["tables"]

    # A screenshot of the top of the page: a real PNG with more than one colour on it.
    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", report.as_uri())
    image = Image.open(shot)
    assert image.size == (1280, 2000)
    assert len(image.convert("L").getcolors()) > 2  # grey levels: a blank page has one


def test_report_of_a_folder_without_runs_is_a_one_line_error(tmp_path):
    (tmp_path / "seed0").mkdir()
    proc = subprocess.run([sys.executable, "-m", "fusechat_utils", "report", "--run-dir", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"fusechat report: --run-dir {tmp_path}: no executed step notebook "
                                   "(<run>/<NN_step>/<NN_step>.ipynb) in it or in its subfolders; run `fusechat run` "
                                   "or `fusechat sweep` first")
    assert not (tmp_path / "report.html").exists()


def test_sweep_runs_come_in_natural_order_and_other_folders_are_not_runs(tmp_path):
    for name in ("seed10", "seed2", "analysis", "seed0"):
        (tmp_path / name).mkdir()
    for name in ("seed10", "seed2", "seed0"):
        (tmp_path / name / "07_eval").mkdir()
        (tmp_path / name / "07_eval" / "07_eval.ipynb").write_text("{}")
    assert [p.name for p in find_runs(tmp_path)] == ["seed0", "seed2", "seed10"]
    assert find_runs(tmp_path / "seed2") == [tmp_path / "seed2"]


@pytest.mark.slow
def test_a_failing_analysis_notebook_still_writes_the_report_and_exits_1(tmp_path):
    """A run whose 04 output cannot be read: dataset_composition fails in its cell, the report shows the error."""
    run = tmp_path / "broken"
    (run / "04_pairs").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "notebooks" / "04_pairs.ipynb", run / "04_pairs" / "04_pairs.ipynb")
    (run / "04_pairs" / "dpo.parquet").write_text("not a parquet file")
    proc = subprocess.run([sys.executable, "-m", "fusechat_utils", "report", "--run-dir", str(run)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"fusechat report: report written to {run / 'report.html'}, but analysis notebook(s) "
                            f"failed: {run / 'analysis' / 'dataset_composition.ipynb'}: cell ")
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="broken-04_pairs"' in html and 'id="analysis-dataset_composition"' in html
    ename = re.search(r"dataset_composition\.ipynb: cell \d+: (\w+): ", error)[1]  # FileNotFoundError, today
    assert ename in html  # the failed cell's traceback


@pytest.mark.slow
def test_a_second_report_reuses_the_analysis_notebooks(sweep_report):
    """Nothing changed: every analysis notebook is reused (the cached `make demo` re-run), byte for byte."""
    before = {p: p.read_bytes() for p in (sweep_report / "analysis").rglob("*.ipynb")}
    proc = subprocess.run([sys.executable, "-m", "fusechat_utils", "report", "--run-dir", str(sweep_report)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    analysis = [line for line in proc.stdout.splitlines() if "analysis/" in line]
    assert len(analysis) == len(before) and all(line.startswith("report: reusing") for line in analysis), analysis
    assert {p: p.read_bytes() for p in before} == before
    assert "without encryption" not in proc.stderr


def test_an_analysis_fingerprint_follows_the_outputs_it_reads(tmp_path):
    from fusechat_utils.io import write_json
    from fusechat_utils.report import analysis_fingerprint

    runs = [tmp_path / "seed0", tmp_path / "seed1"]
    for run in runs:
        write_json(run / "07_eval" / "manifest.json", {"outputs_hash": "a"})
    first = analysis_fingerprint("ablations", {"sweep_dir": str(tmp_path)}, runs)
    assert analysis_fingerprint("ablations", {"sweep_dir": str(tmp_path)}, runs) == first
    assert analysis_fingerprint("benchmark_tables", {"run_dir": str(runs[0])}, runs[:1]) != first
    write_json(runs[1] / "07_eval" / "manifest.json", {"outputs_hash": "b"})  # seed1's 07 ran again, other results
    assert analysis_fingerprint("ablations", {"sweep_dir": str(tmp_path)}, runs) != first
