import unittest
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.rst"


class TestReadme(unittest.TestCase):
    def test_readme_opens_with_the_run_and_test_commands(self):
        text = README.read_text(encoding="utf-8")
        block = text.split(".. code-block:: bash", 1)[1].split("\n\n", 2)[1]
        commands = [line.split("#")[0].strip() for line in block.splitlines()]
        self.assertEqual(commands, ["bash tools/dev.sh run", "bash tools/dev.sh test"])
        ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
        self.assertIn("exec bash tools/dev.sh test", ci)

    def test_readme_renders_without_warnings(self):
        # Odoo renders README.rst as the module description in Apps.
        import docutils.core

        docutils.core.publish_string(
            README.read_text(encoding="utf-8"),
            writer_name="html",
            settings_overrides={"report_level": 2, "halt_level": 2},
        )


if __name__ == "__main__":
    unittest.main()
