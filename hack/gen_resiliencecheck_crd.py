#!/usr/bin/env python3
"""Write the Fault's spec schema into the ResilienceCheck CRD as experiments[].fault.

A check's experiment holds a Fault template: the Fault's spec without `target` (the
check aims every Fault at its own Agent). Copying the schema, rather than accepting any
object, makes the API server validate a template exactly as the Fault it will become,
when the check is applied - the way a CronJob's jobTemplate carries the Job schema.

The copy differs from crds/fault.yaml in three ways, each because the template sits
elsewhere: `target` is gone (and from `required`); transition rules (`oldSelf`) are
dropped, since list items cannot be correlated with their old selves and a template
may change between runs anyway; messages and descriptions that say `spec.` say
`spec.experiments[].fault.` so that an error names the field the user wrote.

Usage: hack/gen_resiliencecheck_crd.py          rewrite crds/resiliencecheck.yaml
       hack/gen_resiliencecheck_crd.py --check  exit 1 if the file is not up to date
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
FAULT_CRD = REPO / "crds" / "fault.yaml"
CHECK_CRD = REPO / "crds" / "resiliencecheck.yaml"
BEGIN = "# BEGIN generated from crds/fault.yaml by hack/gen_resiliencecheck_crd.py"
END = "# END generated"
TEMPLATE_PATH = "spec.experiments[].fault."
DESCRIPTION = (
    "The Fault to inject: a Fault's spec without target (every experiment's Fault targets "
    "spec.agent). Validated as a Fault is; see `kubectl explain fault.spec`."
)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "x-kubernetes-validations":
                rules = [_rewrite(r) for r in value if "oldSelf" not in r["rule"]]
                if rules:
                    out[key] = rules
                continue
            out[key] = _rewrite(value)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    if isinstance(node, str):
        return re.sub(r"\bspec\.", TEMPLATE_PATH, node)
    return node


def template_schema(fault_crd: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(fault_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])
    del spec["properties"]["target"]
    spec["required"] = [r for r in spec["required"] if r != "target"]
    spec = _rewrite(spec)
    spec["description"] = DESCRIPTION
    return dict(spec)


def render(fault_text: str, check_text: str) -> str:
    block = template_schema(yaml.safe_load(fault_text))
    lines = check_text.splitlines(keepends=True)
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    end = next(i for i, line in enumerate(lines) if i > begin and line.strip() == END)
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    dumped = yaml.safe_dump(block, sort_keys=False, width=100, allow_unicode=True)
    body = "".join(indent + line if line.strip() else line for line in dumped.splitlines(keepends=True))
    return "".join(lines[: begin + 1]) + body + "".join(lines[end:])


def main(argv: list[str]) -> int:
    wanted = render(FAULT_CRD.read_text(), CHECK_CRD.read_text())
    if "--check" in argv:
        if wanted != CHECK_CRD.read_text():
            print(f"{CHECK_CRD.relative_to(REPO)} is out of date with crds/fault.yaml: run hack/gen_resiliencecheck_crd.py",
                  file=sys.stderr)
            return 1
        return 0
    CHECK_CRD.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
