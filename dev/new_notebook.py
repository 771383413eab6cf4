"""Write a stripped notebook from a list of cells: `python dev/new_notebook.py` is not a CLI; import `write`.

Used by the kit's authors to (re)create the step notebooks with one tagged `parameters` cell and no outputs.
"""

from __future__ import annotations

import nbformat


def write(path: str, cells: list[tuple[str, str] | tuple[str, str, list[str]]]) -> None:
    """cells: (kind, source[, tags]) with kind "md" or "code"."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source, *tags in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags[0]
        nb.cells.append(cell)
    nbformat.write(nb, path)
