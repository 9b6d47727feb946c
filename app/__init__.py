"""The application's edges, each a client of ``engine``: ``cli`` (the ``understudy`` command, one module
per command group) and ``qt`` (the desktop app). They never import each other; ``main`` is the entry
point that attaches the desktop app's commands to the command line.
"""
