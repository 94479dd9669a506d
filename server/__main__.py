"""python -m server: the coedit language server on stdio (= coedit serve)."""
from .server import start

start()
