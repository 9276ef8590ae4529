#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# openapi-routes.py FILE.yaml [TITLE]: check an OpenAPI 3.1 description of docs/openapi and
# print its operations, one "METHOD /path" a line (path parameters as {name}), for
# test_openapi to compare with the daemon's route table. Exit 1 with one line a problem on
# stderr when the file does not hold together: not OpenAPI 3.1, another title than TITLE, a
# $ref that leads nowhere, a {name} in a path without its `in: path` parameter (or one
# declared that the path lacks), an operation without a 2xx answer or with a status that is
# not a code, an operationId used twice. When the openapi-spec-validator module is there,
# the file is also validated against the OpenAPI 3.1 schema. Needs PyYAML (python3-yaml).
import re
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def resolve(doc, node, problems):
    """node, or what its local $ref names (None, with a problem, when it names nothing)."""
    if not isinstance(node, dict) or "$ref" not in node:
        return node
    ref = node["$ref"]
    if not ref.startswith("#/"):
        problems.append(f"$ref {ref}: only references inside the file are used")
        return None
    target = doc
    for part in ref[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            problems.append(f"$ref {ref} leads nowhere")
            return None
        target = target[part]
    return target


def check_refs(doc, node, problems):
    """Every $ref anywhere in the file resolves."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            resolve(doc, node, problems)
        for value in node.values():
            check_refs(doc, value, problems)
    elif isinstance(node, list):
        for value in node:
            check_refs(doc, value, problems)


def path_params(doc, params, problems):
    names = set()
    for p in params or []:
        p = resolve(doc, p, problems)
        if isinstance(p, dict) and p.get("in") == "path":
            names.add(p.get("name"))
            if p.get("required") is not True:
                problems.append(f"path parameter {p.get('name')} must be required: true")
    return names


def check_operation(doc, path, method, op, common, problems, seen_ids):
    where = f"{method.upper()} {path}"
    in_path = set(re.findall(r"\{([^}]+)\}", path))
    declared = common | path_params(doc, op.get("parameters"), problems)
    for name in sorted(in_path - declared):
        problems.append(f"{where}: {{{name}}} has no `in: path` parameter")
    for name in sorted(declared - in_path):
        problems.append(f"{where}: path parameter {name} is not in the path")
    responses = op.get("responses")
    if not isinstance(responses, dict) or not responses:
        problems.append(f"{where}: no responses")
        return
    for code in responses:
        if not re.fullmatch(r"[1-5][0-9][0-9]|default", str(code)):
            problems.append(f"{where}: response {code!r} is not a status code (quote it)")
    if not any(str(code).startswith("2") for code in responses):
        problems.append(f"{where}: no 2xx response")
    op_id = op.get("operationId")
    if op_id in seen_ids:
        problems.append(f"{where}: operationId {op_id} is used twice")
    seen_ids.add(op_id)


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: openapi-routes.py FILE.yaml [TITLE]", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    problems = []
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1."):
        print(f"{sys.argv[1]}: not an OpenAPI 3.1 document", file=sys.stderr)
        return 1
    title = (doc.get("info") or {}).get("title")
    if len(sys.argv) == 3 and title != sys.argv[2]:
        problems.append(f"info.title is {title!r}, not {sys.argv[2]!r}")
    check_refs(doc, doc, problems)
    routes, seen_ids = [], set()
    for path, item in (doc.get("paths") or {}).items():
        if not str(path).startswith("/") or not isinstance(item, dict):
            problems.append(f"path {path!r}: not a path item")
            continue
        common = path_params(doc, item.get("parameters"), problems)
        for method in METHODS:
            if method in item:
                check_operation(doc, path, method, item[method], common, problems, seen_ids)
                routes.append(f"{method.upper()} {path}")
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate and not problems:
        try:
            validate(doc)
        except Exception as e:  # the validator's own error types vary between versions
            problems.append(f"not valid OpenAPI 3.1: {str(e).splitlines()[0]}")
    for p in problems:
        print(f"{sys.argv[1]}: {p}", file=sys.stderr)
    if problems:
        return 1
    print("\n".join(routes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
