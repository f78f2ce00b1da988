"""`make package` builds an installable plugin zip; `pip install .` metadata names the console command."""

import os
import re
import subprocess
import zipfile
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plugin_zip_has_one_top_folder_and_only_what_users_need():
    subprocess.run(["make", "-s", "package"], cwd=ROOT, check=True, capture_output=True)
    path = os.path.join(ROOT, "dist", "internal_sr.zip")
    assert os.path.getsize(path) <= 25e6
    names = zipfile.ZipFile(path).namelist()
    assert {n.split("/")[0] for n in names} == {"internal_sr"}
    for required in ("metadata.txt", "__init__.py", "plugin.py", "LICENSE", "icon.svg", "core/pipeline.py", "algorithms/provider.py", "ui/task.py"):
        assert f"internal_sr/{required}" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or "/benchmarks/" in n for n in names)


def test_every_picture_the_packaged_readme_shows_is_packaged():
    subprocess.run(["make", "-s", "package"], cwd=ROOT, check=True, capture_output=True)
    names = set(zipfile.ZipFile(os.path.join(ROOT, "dist", "internal_sr.zip")).namelist())
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert pictures, "the README shows no picture: the pattern no longer matches its image links"
    assert [p for p in pictures if f"internal_sr/{p}" not in names] == []


def test_console_command_is_declared():
    text = Path(ROOT, "pyproject.toml").read_text(encoding="utf-8")
    assert 'internal-sr = "internal_sr.core.cli:main"' in text
