"""The local OpenAI-compatible gateway (``understudy serve``): other programs ask Understudy's models
through the OpenAI wire format, and every call is logged like a chat turn.

A client of engine's public API, like the CLI and the GUI; none of the three imports another.
"""
