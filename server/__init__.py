"""server: the coedit language server ("Fix with model"), `coedit fix`, and the model backends.

Importing this package loads nothing heavy: pygls is imported by `server.server` only, torch and
llama.cpp by the backends when a model is loaded.
"""
__version__ = "0.1.0"
