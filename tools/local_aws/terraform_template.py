"""Renders the Terraform templates the tools read (the state machine definition).

Only the subset of `templatefile()` those templates use: `${name}`,
`${cond ? "a" : "b"}`, and `%{ if x }` / `%{ endif }` lines. The static Terraform checks and
the local pipeline both render `terraform/modules/step_functions/definition.asl.json` with it,
so the state machine run locally is the one Terraform deploys.
"""

import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATE_MACHINE = os.path.join(ROOT, "terraform", "modules", "step_functions", "definition.asl.json")


def render(template, variables):
    """The subset of templatefile() the definition uses: ${name}, ${cond ? "a" : "b"}, %{ if x }/%{ endif }."""
    out = []
    stack = []
    for line in template.splitlines(keepends=True):
        directive = re.fullmatch(r"\s*%\{~?\s*(if\s+(\w+)|endif)\s*~?\}\s*", line)
        if directive:
            if directive.group(1).startswith("if"):
                stack.append(bool(variables[directive.group(2)]))
            else:
                stack.pop()
            continue
        if all(stack):
            out.append(line)

    def value(match):
        expr = match.group(1).strip()
        conditional = re.fullmatch(r'(\w+)\s*\?\s*"([^"]*)"\s*:\s*"([^"]*)"', expr)
        if conditional:
            return conditional.group(2) if variables[conditional.group(1)] else conditional.group(3)
        result = variables[expr]
        return str(result).lower() if isinstance(result, bool) else str(result)

    return re.sub(r"\$\{([^}]*)\}", value, "".join(out))


def state_machine(variables):
    """The state machine definition as Terraform renders it with `variables`."""
    with open(STATE_MACHINE) as f:
        return render(f.read(), variables)
