"""The run store: where runs, their journals, artifacts and locks, and the step cache live on disk."""

from __future__ import annotations

from llmflow.store.files import FileRunStore
from llmflow.store.ids import new_run_id
from llmflow.store.location import find_store_root, project_root
from llmflow.store.run_folder import FileRunHandle

__all__ = ["FileRunHandle", "FileRunStore", "find_store_root", "new_run_id", "project_root"]
