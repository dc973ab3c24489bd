"""Stand-ins for what a real Lightning checkpoint pickles besides tensors (config objects, a hostile payload)."""

from __future__ import annotations

import os


class DictConfig:
    """Imitates an OmegaConf DictConfig pickled into `hyper_parameters`."""

    def __init__(self, content: dict) -> None:
        self._content = content


class Hostile:
    """Unpickling this would run a shell command if the loader executed pickled callables."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
