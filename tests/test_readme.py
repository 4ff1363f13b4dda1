"""The README's "write your own strategy" example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_readme_strategy_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- example: own strategy.*?-->\n```python\n(.*?)```", text, re.S)
    assert block is not None
    code = block.group(1)
    assert 15 <= len(code.strip().splitlines()) <= 25
    code = code.replace("progress=False,", f"progress=False, out={str(tmp_path / 'run')!r},")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    acc, messages = out.stdout.split()
    assert 0.0 <= float(acc) <= 1.0 and int(messages) > 0
    assert "__main__:Median" in (tmp_path / "run" / "scenario.yaml").read_text()
