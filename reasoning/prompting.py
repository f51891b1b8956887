"""Find `prompts/`, render its Jinja templates strictly, and read their versions.

Every template starts with a comment `{# version: N #}`; the version travels into caches and provenance so
that a wording change invalidates cached captions and is visible in a rule book.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel

from axr.reasoning.resources import package_dir
from axr.reasoning.schema import json_schema

_VERSION = re.compile(r"\{#-?\s*version:\s*(\S+)\s*-?#\}")


def prompts_dir() -> Path:
    """`$AXR_PROMPTS_DIR`, else the templates shipped in `axr.prompts`."""
    if env := os.environ.get("AXR_PROMPTS_DIR"):
        return Path(env)
    return package_dir("axr.prompts")


def schema_filter(model: type[BaseModel] | dict) -> str:
    """`{{ Verdict | schema }}`: the compact JSON schema of a pydantic model, as a model should read it.

    Titles and class docstrings are dropped: they are for programmers, and small models copy them into
    their answers. Field descriptions stay.
    """
    schema = model if isinstance(model, dict) else json_schema(model)
    return json.dumps(_for_prompt(schema, top=True), separators=(",", ":"))


def shape_filter(model: type[BaseModel] | dict) -> str:
    """`{{ Verdict | shape }}`: an example-shaped skeleton of the answer, which small models follow far better
    than a JSON schema (they copy `$defs` and titles into their answers). Enums show their choices as
    "a|b", strings their description, numbers their range."""
    schema = model if isinstance(model, dict) else json_schema(model)
    return json.dumps(_skeleton(schema, schema.get("$defs", {})), ensure_ascii=False)


def _skeleton(node: dict, defs: dict, name: str = ""):
    if "$ref" in node:
        return _skeleton(defs[node["$ref"].split("/")[-1]], defs, name)
    options = node.get("anyOf")
    if options:
        real = [o for o in options if o.get("type") != "null"]
        return _skeleton(real[0], defs, name) if real else None
    if "enum" in node:
        return "|".join(str(v) for v in node["enum"])
    kind = node.get("type")
    if kind == "object":
        return {k: _skeleton(v, defs, k) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [_skeleton(node.get("items", {}), defs, node.get("description", name))]
    if kind in ("number", "integer"):
        low, high = node.get("minimum"), node.get("maximum")
        return f"<{kind} {low}..{high}>" if low is not None and high is not None else f"<{kind}>"
    if kind == "boolean":
        return "<true|false>"
    return f"<{node.get('description', name or 'text')}>"


def _for_prompt(node, top: bool = False):
    if isinstance(node, list):
        return [_for_prompt(n) for n in node]
    if not isinstance(node, dict):
        return node
    is_object = node.get("type") == "object"
    drop = {"title"} | ({"description"} if (top or is_object) else set())
    return {
        k: (_for_prompt(v) if k not in ("properties", "$defs") else {n: _for_prompt(d) for n, d in v.items()})
        for k, v in node.items()
        if k not in drop
    }


@functools.lru_cache(maxsize=4)
def _environment(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["schema"] = schema_filter
    env.filters["shape"] = shape_filter
    return env


def template_names() -> list[str]:
    return sorted(p.stem for p in prompts_dir().glob("*.jinja"))


def template_version(name: str) -> str:
    path = prompts_dir() / f"{name}.jinja"
    if not path.is_file():
        raise FileNotFoundError(f"prompt template {name!r} not found in {prompts_dir()}")
    match = _VERSION.search(path.read_text(encoding="utf-8").split("\n", 1)[0])
    if not match:
        raise ValueError(f"{path}: first line must be a '{{# version: N #}}' comment")
    return f"{name}@{match.group(1)}"


def render(name: str, **variables: Any) -> str:
    """Render `prompts/<name>.jinja`; a missing variable is an error, never an empty string."""
    env = _environment(str(prompts_dir()))
    try:
        template = env.get_template(f"{name}.jinja")
    except jinja2.TemplateNotFound:
        raise FileNotFoundError(f"prompt template {name!r} not found in {prompts_dir()}") from None
    try:
        return template.render(**variables).strip()
    except jinja2.UndefinedError as err:
        raise ValueError(f"prompt {name!r}: {err}") from None
