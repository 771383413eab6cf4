"""data/benchmarks/ holds exactly the files PROVENANCE.md lists, byte for byte as recorded (size and sha256)."""

import hashlib
import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


def recorded() -> dict[str, tuple[int, str]]:
    rows = re.findall(r"^\| `([^`]+)` \|.*\| ([\d,]+) \| `([0-9a-f]{16})` \|$", (DATA / "PROVENANCE.md").read_text(),
                      flags=re.M)
    return {path: (int(size.replace(",", "")), digest) for path, size, digest in rows}


def test_every_benchmark_file_is_recorded_with_its_size_and_digest():
    files = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"}
    table = recorded()
    assert files == set(table)
    for path, (size, digest) in table.items():
        data = (DATA / path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()[:16]) == (size, digest), path
