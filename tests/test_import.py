import subprocess
import sys


def test_import_compoundai_is_light():
    code = (
        "import sys, compoundai, compoundai.cli, compoundai.task, compoundai.router;"
        "heavy = [m for m in ('torch', 'chromadb', 'transformers', 'sentence_transformers')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_subpackages_import():
    import compoundai_adapters  # noqa: F401
    import compoundai_evaluators  # noqa: F401
    import compoundai_retrievers  # noqa: F401
