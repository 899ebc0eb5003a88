"""Where the pipeline's files are: main.nf, its config, modules, `bin/` and the schemas.

`CNVKIT_NF_PIPELINE` names a pipeline folder (a checkout) when set. Otherwise an installed
package uses the copy shipped inside it (`cnvkit_nf/pipeline/`), and a checkout its own root.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

SETTING = "CNVKIT_NF_PIPELINE"
_PACKAGED = Path(__file__).resolve().parent / "pipeline"
_CHECKOUT = Path(__file__).resolve().parent.parent


def _pipeline() -> Path:
    if os.environ.get(SETTING):
        return Path(os.environ[SETTING]).resolve()
    return _PACKAGED if (_PACKAGED / "main.nf").is_file() else _CHECKOUT


PIPELINE = _pipeline()
BIN = PIPELINE / "bin"
SCHEMA = PIPELINE / "schema"


def load_bin(name: str) -> ModuleType:
    """A script of `bin/` (stdlib and CNVkit only, run by the pipeline's tasks) as a module,
    so that the package and the tasks share its rules. `bin/` goes on the import path, as for
    a script run from it: the scripts import each other as plain modules."""
    if str(BIN) not in sys.path:
        sys.path.insert(0, str(BIN))
    spec = importlib.util.spec_from_file_location(name, BIN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module
