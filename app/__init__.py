"""The Understudy application: the ``understudy`` command and (soon) the Qt desktop GUI."""
