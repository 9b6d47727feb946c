"""The engine's error hierarchy.

Every error the engine raises on purpose is an ``UnderstudyError`` whose message says what happened and
what to do. The CLI and the GUI show that message as it is; anything else is a bug.
"""


class UnderstudyError(Exception):
    """Base class: the message is meant for the user."""


class ConfigError(UnderstudyError):
    """A configuration file is unreadable, holds an invalid value, or cannot be written or locked."""


class CatalogError(ConfigError):
    """models.toml (or a user override) is malformed or names something that does not exist."""


class ModelNotFoundError(UnderstudyError):
    """A model's weights are not where its catalog entry says they are."""


class ModelLoadError(UnderstudyError):
    """A model file exists but the backend cannot load it (corrupt, truncated, wrong format)."""


class ModelDownloadError(UnderstudyError):
    """Fetching weights from a hub failed (offline, wrong checksum, interrupted)."""


class BackendError(UnderstudyError):
    """A backend failed while generating."""


class StoreError(UnderstudyError):
    """The local database cannot be opened, migrated or written."""


class AdapterError(UnderstudyError):
    """A LoRA adapter file is missing, corrupt, or does not fit the base model it is applied to."""


class TuningError(UnderstudyError):
    """A dataset cannot be built, or training or export cannot run, as asked."""


class TrainingCancelled(TuningError):
    """Training stopped because it was asked to; its last checkpoint lets ``--resume`` continue."""


class EncoderError(UnderstudyError):
    """A sentence encoder for discovery and routing cannot be built or loaded."""


class DiscoveryError(UnderstudyError):
    """Task discovery, routing or the report cannot work with what the log holds."""


class LogImportError(UnderstudyError):
    """A chat log to import is unreadable or malformed; nothing was imported."""


class SettingsError(ConfigError):
    """settings.json holds something that is not a valid setting."""


class PolicyError(ConfigError):
    """tools.json is damaged or a grant is not a folder."""


class ToolError(UnderstudyError):
    """A tool was called wrongly or failed; the message says what to fix."""


class McpError(UnderstudyError):
    """mcp.json is damaged, a server is not approved, or a server failed to answer."""


class RedactionError(UnderstudyError):
    """Detection failed, so the text must not leave the machine."""


class EscalationError(UnderstudyError):
    """A cloud call was refused (no consent, local-only) or failed; nothing was lost."""


class KeyringError(UnderstudyError):
    """No secure keychain to hold an API key."""


class ContextLengthError(UnderstudyError):
    """The messages do not fit the model's context with room for the answer."""


class UnknownModelError(UnderstudyError):
    """A model name that is neither the generalist, a served specialist nor ``auto``."""


class ConsentDenied(EscalationError):
    """The user declined, in the review, to send a request that waited for them ("ask me")."""


class ConsentTimedOut(EscalationError):
    """Nobody reviewed a request that waited for them ("ask me") within the timeout."""
