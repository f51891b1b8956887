"""AXR: explainable anomaly reasoning with vision-language models.

This folder is the root package `axr`. The project's top-level folders are mapped beneath it when AXR is
built or installed (pyproject.toml, `package-dir`): `reasoning/` -> `axr.reasoning`, `eval/` -> `axr.eval`,
`training/` -> `axr.training`, `prompts/` -> `axr.prompts`. Installing AXR adds the import name `axr` only.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("axr")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
