"""The manual builds with warnings as errors (mkdocs --strict: broken links, bad docstrings of the public
API), and its generated pages cover every registered name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def test_the_manual_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in ("index.html", "api/index.html", "reference/devices/index.html", "reference/configs/index.html",
                 "bring-your-own-network/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def test_generated_pages_cover_every_registered_name() -> None:
    import docs_hooks

    import device_models
    import hardware_in_loop
    from hardware_in_loop.tasks import TASKS

    devices = docs_hooks.devices_page()
    assert all(f"## `{name}`" in devices for name in device_models.available())
    assert "aihwkit prog_coeff[1]" in devices  # a constant's source, from the model's file
    configs = docs_hooks.configs_page()
    assert all(f"## Task `{name}`" in configs for name in TASKS) and "`clock.t_start_s`" in configs
    schemes = docs_hooks.schemes_page()
    assert all(f"## `{name}`" in schemes for name in hardware_in_loop.available_schemes())
