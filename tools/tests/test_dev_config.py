"""`tools/dev.sh config` on both layouts of an Odoo 18 source tree.

A git checkout holds addons in ``addons/`` and ``odoo/addons/``; the official
source tarball and the Debian package only in ``odoo/addons/``. An
``addons_path`` entry that does not exist makes every HTTP request answer 500.
"""

import configparser
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ADDON = "construction_asset_sync"


def addon_names(folder):
    return {entry.name for entry in folder.iterdir() if (entry / "__manifest__.py").is_file()}


def link_tree(source, target, addons):
    """A tree made of symlinks into ``source``: odoo-bin, requirements.txt, the
    ``odoo`` package, and ``addons`` ({folder relative to target: [addon dirs]})."""
    target.mkdir()
    for name in ("odoo-bin", "requirements.txt"):
        (target / name).symlink_to(source / name)
    (target / "odoo").mkdir()
    for entry in (source / "odoo").iterdir():
        if entry.name != "addons":
            (target / "odoo" / entry.name).symlink_to(entry)
    (target / "odoo" / "addons").mkdir()
    init = source / "odoo" / "addons" / "__init__.py"
    if init.is_file():
        (target / "odoo" / "addons" / "__init__.py").symlink_to(init)
    for folder, entries in addons.items():
        (target / folder).mkdir(exist_ok=True)
        for entry in entries:
            (target / folder / entry.name).symlink_to(entry)
    return target


def addon_dirs(folder):
    return [entry for entry in folder.iterdir() if (entry / "__manifest__.py").is_file()]


class TestDevConfig(unittest.TestCase):
    """Whichever layout ODOO_SRC has, the other one is built from it with symlinks."""

    @classmethod
    def setUpClass(cls):
        source = Path(os.environ.get("ODOO_SRC", "/nonexistent")).resolve()
        if not (source / "odoo-bin").is_file():
            raise AssertionError("ODOO_SRC must point at the bootstrapped Odoo tree")
        cls.tmp = Path(tempfile.mkdtemp(prefix="cas-dev-config-"))
        cls.addClassCleanup(subprocess.run, ["rm", "-rf", str(cls.tmp)], check=True)
        core = addon_dirs(source / "odoo" / "addons")
        if (source / "addons").is_dir():
            cls.git_tree = source
            cls.tarball_tree = link_tree(
                source, cls.tmp / "tarball", {"odoo/addons": core + addon_dirs(source / "addons")}
            )
        else:
            cls.tarball_tree = source
            base = [entry for entry in core if entry.name == "base"]
            others = [entry for entry in core if entry.name != "base"]
            cls.git_tree = link_tree(
                source, cls.tmp / "git", {"odoo/addons": base, "addons": others}
            )
        cls.expected = {entry.name for entry in core} | {ADDON}
        if (source / "addons").is_dir():
            cls.expected |= addon_names(source / "addons")

    def write_config(self, odoo_src, name):
        state_dir = self.tmp / f"state-{name}"
        env = dict(
            os.environ,
            ODOO_SRC=str(odoo_src),
            CAS_STATE_DIR=str(state_dir),
            CAS_CACHE=str(self.tmp / "cache"),
        )
        subprocess.run(
            ["bash", str(REPO_ROOT / "tools" / "dev.sh"), "config"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        parser = configparser.ConfigParser()
        parser.read(state_dir / "odoo.conf")
        return [Path(entry.strip()) for entry in parser["options"]["addons_path"].split(",")]

    def assert_finds_every_addon(self, addons_path):
        missing_folders = [entry for entry in addons_path if not entry.is_dir()]
        self.assertEqual(missing_folders, [], "addons_path lists folders that do not exist")
        found = set().union(*(addon_names(entry) for entry in addons_path))
        self.assertEqual(self.expected - found, set(), "addons not found on addons_path")

    def test_git_layout(self):
        addons_path = self.write_config(self.git_tree, "git")
        self.assert_finds_every_addon(addons_path)
        self.assertIn(self.git_tree / "addons", addons_path)
        self.assertIn(self.git_tree / "odoo" / "addons", addons_path)

    def test_tarball_layout(self):
        self.assertFalse((self.tarball_tree / "addons").exists())
        addons_path = self.write_config(self.tarball_tree, "tarball")
        self.assert_finds_every_addon(addons_path)
        self.assertIn(self.tarball_tree / "odoo" / "addons", addons_path)
        self.assertIn("maintenance", addon_names(self.tarball_tree / "odoo" / "addons"))


if __name__ == "__main__":
    unittest.main()
