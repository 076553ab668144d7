"""clstr: run shell commands in parallel on many machines over SSH."""
__version__ = "0.2.0"

from .api import run  # noqa: E402
from .errors import InputError  # noqa: E402
from .result import RunResult  # noqa: E402

__all__ = ["run", "RunResult", "InputError", "__version__"]
