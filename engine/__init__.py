"""Understudy's Qt-free core: everything the command line, the desktop app and the gateway share.

The paper's six steps, one place each:

- ``store`` (S1): the SQLite log of every turn, model call, tool call and decision; ``store.migrations``.
- ``redact`` (S2): personal and secret data found and replaced before text leaves or is trained on.
- ``discovery`` (S3): logged requests embedded (``embeddings``) and clustered into tasks.
- ``tuning`` (S4, S5): base choice, datasets, LoRA training, export, the gate, jobs and the schedule.
- ``router`` (S6): each request to a specialist, the generalist, or a proposed escalation.

Around them:

- ``agent``: the turn loop: route, generate, call tools, log the turn in one transaction.
- ``backends``: the ``Backend`` Protocol and the pool of loaded models; ``backends.llama_cpp``.
- ``catalog``: models.toml as typed entries, where each model's weights are, hub downloads.
- ``tools``: the Tool Protocol, ``calling`` (choice by meaning, grammar), ``policy``, ``mcp``,
  ``builtin`` (one module per tool, their limits in ``builtin.security``).
- ``escalation``: consent records, the payload preview, the cloud client and its keys.
- ``report``: per task, traffic, routes, satisfaction, savings and replaceability.
- ``log_import``: chat history from other tools, for discovery.
- ``settings``, ``config``, ``files``: validated configs, atomic writes and the read-modify-write lock.
- ``paths``, ``eval_sets``: where data lives and the labelled sets shipped in resources/.
- ``plugins``, ``hookspecs``: pluggy hooks through which backends and tools register (built-ins too).
- ``bench``: every ``understudy bench`` measurement, side by side in one run.
- ``errors``: the one error hierarchy; its messages are meant for the user.

Nothing here imports Qt or ``app`` (an import-linter contract), and heavy libraries (llama_cpp, torch,
...) are imported inside the functions that need them so start-up stays fast.
"""

__version__ = "0.1.0"
