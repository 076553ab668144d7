"""``python -m clstr``."""
from .cli import entry

entry()
