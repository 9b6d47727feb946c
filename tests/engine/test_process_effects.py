"""No process-wide side effects: loading the encoder, importing the trainer or loading a model leaves the
environment and the libraries as they were, so the rest of the process (the app's other sections) works
as it would have without them.

Each check runs in a fresh Python process, with an environment free of the HF_HUB_OFFLINE this test
session sets for itself, so what it sees is what the imports and loads did.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
HUB_SETTINGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_XET")

# Refuses connections to anything but this machine, so an encoder that looked for the hub would fail.
LOOPBACK_ONLY = """
import socket
real_connect = socket.socket.connect
def guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"reached for the network ({address})")
    return real_connect(self, address)
socket.socket.connect = guarded_connect
"""


def run_fresh(script: str) -> dict:
    """Run ``script`` in a fresh interpreter without the hub settings; it prints one JSON object last."""
    environment = {key: value for key, value in os.environ.items() if key not in HUB_SETTINGS}
    finished = subprocess.run(
        [sys.executable, "-c", LOOPBACK_ONLY + script],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_download_after_the_encoders_load_is_tried_not_refused_as_offline(tmp_path, entry_toml):
    """Ticking Tools loads the encoder; Models -> Download must still reach the hub afterwards."""
    catalog_file = tmp_path / "catalog.toml"
    catalog_file.write_text(
        'default_generalist = "tiny"\n'
        + entry_toml(source='{ hub_repo = "someone/tiny-GGUF", hub_file = "tiny.gguf" }')
    )
    result = run_fresh(f"""
import json, os
from pathlib import Path
from engine import catalog, embeddings
from engine.errors import ModelDownloadError

embeddings.load_encoder()  # what the tool shortlist loads
embeddings.load_encoder(embeddings.MINILM)
shipped, user = Path({str(catalog_file)!r}), Path({str(tmp_path / "none.toml")!r})
entry = catalog.load_catalog(shipped=shipped, user=user).get("tiny")
try:
    catalog.download(entry, endpoint="http://127.0.0.1:{closed_loopback_port()}")
    failure = None
except ModelDownloadError as error:
    failure = str(error)
# torch and scikit-learn set variables of their own on import; the hub's must stay unset.
hub_settings = [key for key in {HUB_SETTINGS!r} if key in os.environ]
print(json.dumps({{"failure": failure, "hub_settings": hub_settings}}))
""")
    assert result["hub_settings"] == []
    assert result["failure"].startswith("could not download tiny.gguf from someone/tiny-GGUF")
    assert "offline mode" not in result["failure"]
    assert "connect" in result["failure"].lower()


def test_imports_and_a_model_load_leave_the_environment_and_llama_cpp_alone():
    result = run_fresh("""
import json, os
environment = dict(os.environ)
import llama_cpp
import llama_cpp.llama_cpp as native
default_params, llama = native.llama_model_default_params, llama_cpp.Llama

import engine.backends.llama_cpp
import engine.catalog
import engine.embeddings
import engine.tuning.trainer
from engine import backends, catalog

entry = catalog.load_catalog(user=catalog.shipped_catalog_path()).get("smollm2-135m-instruct")
backend = backends.load(entry)
print(json.dumps({
    "environment_kept": dict(os.environ) == environment,
    "default_params_kept": native.llama_model_default_params is default_params,
    "llama_kept": llama_cpp.Llama is llama,
    "loaded": backend.n_ctx > 0,
}))
""")
    assert result == {
        "environment_kept": True,
        "default_params_kept": True,
        "llama_kept": True,
        "loaded": True,
    }
