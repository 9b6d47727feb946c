"""Understudy's Qt-free core: catalog, backends, the log, and the turn loop.

The CLI and the GUI are two clients of this package. Nothing here imports Qt, and heavy libraries
(llama_cpp, torch, ...) are imported inside the functions that need them so start-up stays fast.
"""

__version__ = "0.1.0"
