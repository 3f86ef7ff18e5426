"""TF Serving's model config file (``--model_config_file``), read for the one model this server serves.

The file is a ``ModelServerConfig`` in protobuf text format::

    model_config_list {
      config {
        name: "movies"
        base_path: "/models/movies"
        model_platform: "tensorflow"
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
    }

Its message classes come from the ``tensorflow-serving-api`` package
(``tensorflow_serving.config.model_server_config_pb2``, which imports no TensorFlow module). Of each
entry this server uses ``name``, ``base_path`` and ``version_labels``; one server serves one model,
so a file listing several names the one to serve by ``--name`` or by its base path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ModelConfigError(ValueError):
    """A model config file this server cannot use (unreadable, no entry, ambiguous)."""


@dataclass(frozen=True)
class ModelEntry:
    """One ``config`` entry of the file: what this server takes from it."""

    name: str
    base_path: str
    version_labels: dict[str, int] = field(default_factory=dict)


def read_model_config(
    path: str | Path, name: str | None = None, base_path: str | None = None
) -> ModelEntry:
    """The entry to serve from a TF Serving model config file.

    Args:
        path: the text-format ``ModelServerConfig``.
        name: pick the entry of this name (``--name``), when given.
        base_path: else pick the entry with this base path (``MODEL_DIR``), when given.

    Returns:
        The entry; a file with a single entry gives it whatever ``name`` / ``base_path`` say.

    Raises:
        ModelConfigError: unreadable or unparsable file, no ``model_config_list`` entry, or several
            entries and none picked.
    """
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ModelConfigError(
            f"Reading a model config file needs tensorflow-serving-api ({error}): pip install "
            "--no-deps tensorflow-serving-api, or pass --version-labels instead."
        ) from None
    try:
        text = Path(path).read_text(encoding="utf-8")
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ModelConfigError(f"Model config file {path} cannot be read: {error}") from None
    entries = list(config.model_config_list.config)
    if not entries:
        raise ModelConfigError(
            f"Model config file {path} has no model_config_list {{ config {{ ... }} }} entry."
        )
    if len(entries) > 1:
        picked = [e for e in entries if name is not None and e.name == name]
        if not picked and base_path is not None:
            wanted = Path(base_path).resolve()
            picked = [e for e in entries if e.base_path and Path(e.base_path).resolve() == wanted]
        if len(picked) != 1:
            names = ", ".join(e.name for e in entries)
            raise ModelConfigError(
                f"Model config file {path} lists several models ({names}); this server serves one: "
                "pick it with --name (or give its base path as MODEL_DIR)."
            )
        entries = picked
    entry = entries[0]
    return ModelEntry(
        entry.name, entry.base_path, {k: int(v) for k, v in entry.version_labels.items()}
    )
