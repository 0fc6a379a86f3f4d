"""The configuration reference (docs/configuration.md), generated from the parsers.

Every component reads its settings flag → environment variable → default, and each
flag's help says its variable and default. The reference is those help texts, one
table per component, so it cannot drift from the code: a test regenerates it and
compares with the committed file.

    python -m agentops.config_reference > docs/configuration.md
"""

from __future__ import annotations

import argparse
import sys

HEADER = """# Configuration reference

Generated from the command-line parsers by `python -m agentops.config_reference`
(a test keeps this file equal to its output). Every setting is a flag, or the
environment variable named in its description; the flag wins. Every duration is
Go-style (`500ms`, `2s`, `1m30s`). The names a setting "replaces" took a number of
seconds; they still work, as does a number without a unit, with a warning in the log.

Resource settings (thresholds, healing policy, fault parameters) live in the custom
resources instead: `kubectl explain agent.spec --recursive`, `kubectl explain
fault.spec --recursive`.
"""


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from agentops_agents.settings import build_parser as agent_parser
    from agentops_operator.settings import add_arguments
    from agentops_sidecar.settings import build_parser as sidecar_parser
    from agentops_ui.settings import build_parser as ui_parser

    operator = argparse.ArgumentParser(prog="agentops operator")
    add_arguments(operator)
    return [("agentops operator", operator), ("agentops sidecar", sidecar_parser()),
            ("agentops ui", ui_parser()), ("agentops agent", agent_parser())]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    out = [HEADER]
    for name, parser in _parsers():
        out.append(f"\n## `{name}`\n")
        if parser.description:
            out.append(f"{_cell(parser.description)}\n")
        out.append("\n| flag | meaning |\n|---|---|")
        for action in parser._actions:  # argparse keeps no public list of its arguments
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}` (positional)"
            out.append(f"| {flags} | {_cell(action.help or '')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
