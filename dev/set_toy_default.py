"""Change one toy default in its three places at once: params/toy/<step>.yaml, the notebook's parameters cell and
the config dataclass default. `python dev/set_toy_default.py 02_sampling sample_batch_size 128`."""

import json
import re
import sys
from pathlib import Path

import yaml

step, key, raw = sys.argv[1:4]
value = yaml.safe_load(raw)
root = Path(__file__).resolve().parent.parent
yml = root / "params" / "toy" / f"{step}.yaml"
text = yml.read_text()
new = re.sub(rf"^{key}:.*$", f"{key}: {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}",
             text, flags=re.M)
assert new != text or f"{key}:" in text, f"{key} not in {yml}"
yml.write_text(new)
nb_path = root / "notebooks" / f"{step}.ipynb"
nb = json.loads(nb_path.read_text())
for cell in nb["cells"]:
    if "parameters" in cell.get("metadata", {}).get("tags", []):
        src = "".join(cell["source"])
        src2 = re.sub(rf"^{key} = [^#\n]*?(\s*#)", lambda m: f"{key} = {value!r}{m.group(1)}", src, flags=re.M)
        assert src2 != src or f"{key} = {value!r}" in src, f"{key} not in {nb_path}"
        cell["source"] = src2.splitlines(keepends=True)
nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
print(f"{key} = {value!r}: {yml.name}, {nb_path.name}; now edit the dataclass default by hand if it is a literal")
