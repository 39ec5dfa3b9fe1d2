"""Reading YAML (the config file, task.yaml) safely, with one way of saying where it is broken.

PyYAML's errors are translated here, once; each caller names the file in its own error.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml when PyYAML was built with it (as its wheels are): ~10x the pure Python code.
_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BrokenYaml(ValueError):
    """The text is not YAML; the message says where (`not valid YAML (line 3)`) or why."""


def load(text: str) -> Any:
    """The document in `text`, plain data only (safe loading); BrokenYaml when it is not YAML."""
    try:
        loader = _FastLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        pass  # libyaml refuses some escapes ("\uD800") the pure parser reads: it decides
    except RecursionError:
        pass  # the pure parser says where
    try:
        return yaml.safe_load(text)
    except RecursionError as exc:
        raise BrokenYaml("nested too deeply") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BrokenYaml(f"not valid YAML{f' (line {mark.line + 1})' if mark else ''}") from exc
