"""One module per sidebar section; sections never import each other and talk through ``AppContext``."""
