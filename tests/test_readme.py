"""README.md: the ten-line example runs as printed, and the prerequisites it lists are the ones the project needs."""

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _example() -> str:
    """The first ```python block under the heading '## Ten lines...'."""
    section = re.search(r"^## Ten lines.*?(?=^## )", README, re.S | re.M)
    assert section, "README.md lost its '## Ten lines' section"
    return re.search(r"```python\n(.*?)```", section.group(0), re.S).group(1)


@pytest.mark.slow
def test_the_ten_line_example_runs(tmp_path):
    code = _example()
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 14, "keep the example short"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr
    scores = dict(re.findall(r"^(\w+)\s*: MMD\^2 to held-out points = (\S+)$", out.stdout, re.M))
    assert set(scores) == {"none", "gaussian"}, out.stdout
    assert all(math.isfinite(float(v)) and 0 <= float(v) < 0.05 for v in scores.values()), scores  # both learned
    assert list(tmp_path.iterdir()) == []  # it writes nothing


def test_the_prerequisites_are_the_real_ones():
    quick = re.search(r"^## Quick start.*?(?=^## )", README, re.S | re.M).group(0)
    makefile = (ROOT / "Makefile").read_text()
    assert "npm install" in makefile and "`npm`" in quick, "make book installs MathJax with npm: say so"
    assert "chromium" in makefile and "Chromium" in quick
    uses_tomllib = any("import tomllib" in p.read_text() for p in (ROOT / "tests").glob("*.py"))
    assert uses_tomllib and "Python 3.11" in quick, "the tests import tomllib (Python 3.11+): say so"
    assert "jupyter execute book/" in quick, "say how to run one chapter"


def test_the_install_line_names_this_release():
    from molli_utils.runtime import colab_install_spec

    specs = set(re.findall(r'pip install "(molli-utils @ git\+[^"<]+)"', README))  # not the template <repo>
    assert specs == {colab_install_spec()}, f"README installs {specs}; this release is {colab_install_spec()!r}"
