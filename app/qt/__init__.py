"""The PySide6 desktop app: ``app`` builds the window, ``main_window`` is its shell, ``workers`` run long
work off the GUI thread and report through signals, ``sections/`` holds one module per sidebar section and
``widgets/`` what several sections share.
"""
