"""Static checks of terraform/, with no provider (check_providers.py validates and plans with one).

Parses every .tf file with python-hcl2 and checks:

1. every module call passes only variables the module declares, and every required one;
2. every `var.x` resolves to a declared variable of its module, every `local.x` to a local,
   and every `module.x.y` to a module call whose source declares output `y`;
3. every CloudWatch alarm has alarm_actions and ok_actions;
4. every queue, table, topic, log group and bucket is encrypted with KMS;
5. no IAM resource "*" unless the line before says `# wildcard:` (why AWS requires it);
6. every environment variable the binaries require is set by the lambda module, and every
   variable it sets is one a binary reads;
7. the state machine template renders (Batch on and off), passes statelint, and reads only
   fields the manifest-builder sends and the converter returns;
8. what deployable.py checks: IAM listing and prefixes, the key policy, Batch metrics, queue
   retention, name and Batch-settings validation, timeouts, the DynamoDB retry, unused data
   sources (its docstring has the list).

usage: check_terraform.py REPO_ROOT    (exit 1 with one line per problem)
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import hcl2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tools.local_aws.terraform_template import render  # noqa: E402 - after the path is set

import deployable  # noqa: E402 - tests/terraform is on the path as the script's directory

PROBLEMS = []


def problem(message):
    PROBLEMS.append(message)


def unquote(text):
    if isinstance(text, str) and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def blocks(parsed, kind):
    """Yields (type, name, body) of resource/data blocks, or (name, body) pairs flattened."""
    for entry in parsed.get(kind, []):
        for key, value in entry.items():
            yield unquote(key), value


def load_module(directory):
    """All .tf files of one directory, merged."""
    merged = {"variable": [], "output": [], "module": [], "resource": [], "data": [], "locals": []}
    texts = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".tf"):
            continue
        path = os.path.join(directory, name)
        with open(path) as f:
            text = f.read()
        texts[path] = text
        with open(path) as f:
            parsed = hcl2.load(f)
        for kind in merged:
            merged[kind].extend(parsed.get(kind, []))
    return merged, texts


def variables_of(module):
    declared = {}
    for name, body in blocks(module, "variable"):
        declared[name] = "default" in body
    return declared


def outputs_of(module):
    return {name for name, _ in blocks(module, "output")}


def locals_of(module):
    names = set()
    for entry in module["locals"]:
        names.update(k for k in entry if not k.startswith("__"))
    return names


def walk_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("__"):
                continue
            yield from walk_strings(k)
            yield from walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_strings(v)


def module_dirs(root):
    dirs = [os.path.join(root, "terraform")]
    for parent in ["modules", "examples"]:
        base = os.path.join(root, "terraform", parent)
        dirs.extend(os.path.join(base, d) for d in sorted(os.listdir(base)))
    return dirs


def check_interfaces(root, modules):
    for directory, (module, _) in modules.items():
        for call_name, body in blocks(module, "module"):
            source = unquote(body.get("source", ""))
            target = os.path.normpath(os.path.join(directory, source))
            if target not in modules:
                problem(f"{directory}: module {call_name}: source {source} is not a module of this repository")
                continue
            declared = variables_of(modules[target][0])
            passed = {k for k in body if not k.startswith("__") and k not in ("source", "count", "for_each", "depends_on", "providers")}
            for name in sorted(passed - set(declared)):
                problem(f"{directory}: module {call_name} passes {name}, which {source} does not declare")
            for name, has_default in sorted(declared.items()):
                if not has_default and name not in passed:
                    problem(f"{directory}: module {call_name} does not pass required variable {name}")
        for name, body in blocks(module, "variable"):
            if "description" not in body or "type" not in body:
                problem(f"{directory}: variable {name} needs a description and a type")
        for name, body in blocks(module, "output"):
            if "description" not in body:
                problem(f"{directory}: output {name} needs a description")


REFERENCE = re.compile(r"\b(var|local|module)\.([A-Za-z_][A-Za-z0-9_-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][A-Za-z0-9_-]*))?")


def check_references(root, modules):
    for directory, (module, texts) in modules.items():
        declared = variables_of(module)
        local_names = locals_of(module)
        calls = {name: body for name, body in blocks(module, "module")}
        for path, text in texts.items():
            # Comments are prose, not references.
            code = re.sub(r"#[^\n]*", "", text)
            for kind, name, attribute in REFERENCE.findall(code):
                if kind == "var" and name not in declared:
                    problem(f"{path}: var.{name} is not declared")
                elif kind == "local" and name not in local_names:
                    problem(f"{path}: local.{name} is not defined")
                elif kind == "module":
                    if name not in calls:
                        problem(f"{path}: module.{name} is not called here")
                        continue
                    source = os.path.normpath(os.path.join(directory, unquote(calls[name]["source"])))
                    if attribute and source in modules and attribute not in outputs_of(modules[source][0]):
                        problem(f"{path}: module.{name}.{attribute} is not an output of {unquote(calls[name]['source'])}")


def resources(modules, kind):
    for directory, (module, _) in modules.items():
        for entry in module["resource"]:
            for rtype, instances in entry.items():
                if unquote(rtype) != kind:
                    continue
                for name, body in instances.items():
                    yield directory, unquote(name), body


def check_alarms(modules):
    count = 0
    for directory, name, body in resources(modules, "aws_cloudwatch_metric_alarm"):
        count += 1
        for actions in ("alarm_actions", "ok_actions"):
            if not body.get(actions):
                problem(f"{directory}: alarm {name} has no {actions}")
    if count == 0:
        problem("no CloudWatch alarm found at all")


def check_encryption(modules):
    required = {
        "aws_sqs_queue": lambda b: bool(b.get("kms_master_key_id")),
        "aws_sns_topic": lambda b: bool(b.get("kms_master_key_id")),
        "aws_cloudwatch_log_group": lambda b: bool(b.get("kms_key_id")),
        "aws_dynamodb_table": lambda b: any(
            s.get("enabled") is True and s.get("kms_key_arn") for s in as_list(b.get("server_side_encryption"))
        ),
    }
    for kind, ok in required.items():
        found = False
        for directory, name, body in resources(modules, kind):
            found = True
            if not ok(body):
                problem(f"{directory}: {kind}.{name} is not encrypted with KMS")
        if not found:
            problem(f"no {kind} found: the check would prove nothing")
    buckets = [(d, n) for d, n, _ in resources(modules, "aws_s3_bucket")]
    encrypted = set()
    for directory, name, body in resources(modules, "aws_s3_bucket_server_side_encryption_configuration"):
        text = json.dumps(body)
        if '"sse_algorithm": "\\"aws:kms\\""' in text or '"aws:kms"' in text:
            encrypted.add(directory)
    for directory, name in buckets:
        if directory not in encrypted:
            problem(f"{directory}: bucket {name} has no SSE-KMS default encryption")
    if not buckets:
        problem("no S3 bucket found: the check would prove nothing")


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


WILDCARD = re.compile(r'(resources\s*=\s*\[\s*"\*"\s*\]|Resource\s*=\s*"\*")')


def check_wildcards(modules):
    for directory, (_, texts) in modules.items():
        for path, text in texts.items():
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if WILDCARD.search(line):
                    previous = lines[i - 1].strip() if i > 0 else ""
                    if not previous.startswith("# wildcard:"):
                        problem(f"{path}:{i + 1}: IAM resource \"*\" without a `# wildcard:` comment saying why")


def rust_variables(path, functions):
    """Variables read by `env.<function>("NAME", ...)` calls (rustfmt may break the chain)."""
    with open(path) as f:
        text = f.read()
    found = set()
    for function in functions:
        found.update(re.findall(r"\benv\s*\.\s*" + function + r'(?:::<[^>]*>)?\(\s*"([A-Z0-9_]+)"', text))
    return found


def check_environment(root, modules):
    lambda_dir = os.path.join(root, "terraform", "modules", "lambda")
    module = modules[lambda_dir][0]
    environments = {}
    for entry in module["locals"]:
        for name in ("builder_environment", "converter_environment"):
            if name in entry:
                environments[name] = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", "".join(walk_strings(entry[name]))))
    # Each binary's config reader, and the shared reader both use for the output locations.
    shared_reader = os.path.join(root, "shared", "src", "manifest.rs")
    binaries = {
        "builder_environment": os.path.join(root, "manifest-builder", "src", "config.rs"),
        "converter_environment": os.path.join(root, "converter", "src", "manifest_run", "config.rs"),
    }
    for local_name, source in binaries.items():
        if local_name not in environments:
            problem(f"lambda module: local.{local_name} is missing")
            continue
        required = rust_variables(source, ["required", "required_parsed"])
        readable = set()
        for reader in (source, shared_reader):
            readable |= rust_variables(reader, ["required", "required_parsed", "optional", "parsed", "flag"])
        if not required:
            problem(f"{source}: no required variable found; the check would prove nothing")
        for variable in sorted(required - environments[local_name]):
            problem(f"lambda module: {local_name} lacks {variable}, which {os.path.relpath(source, root)} requires")
        for variable in sorted(environments[local_name] - readable):
            problem(f"lambda module: {local_name} sets {variable}, which {os.path.relpath(source, root)} never reads")


def rust_struct_fields(path, struct):
    with open(path) as f:
        text = f.read()
    match = re.search(r"pub struct " + struct + r"\s*\{(.*?)\n\}", text, re.S)
    if not match:
        problem(f"{path}: struct {struct} not found")
        return set()
    return set(re.findall(r"pub (\w+):", match.group(1)))


def check_state_machine(root, statelint):
    path = os.path.join(root, "terraform", "modules", "step_functions", "definition.asl.json")
    with open(path) as f:
        template = f.read()
    sends = rust_struct_fields(os.path.join(root, "shared", "src", "manifest.rs"), "ExecutionInput")
    outcome = os.path.join(root, "converter", "src", "manifest_run", "outcome.rs")
    returns = rust_struct_fields(outcome, "RunResult")
    if "result" in returns:
        # `#[serde(flatten)] result: ConversionResult`, without the schema (RunResult::new).
        returns.discard("result")
        conversion = rust_struct_fields(os.path.join(root, "shared", "src", "types.rs"), "ConversionResult")
        returns |= conversion - {"schema"}
    for batch in (True, False):
        rendered = render(
            template,
            {
                "batch_enabled": batch,
                "lambda_max_bytes": 10737418240,
                "converter_function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:p-dev-converter",
                "job_queue_arn": "arn:aws:batch:eu-west-1:123456789012:job-queue/p-dev-converter",
                "job_definition_arn": "arn:aws:batch:eu-west-1:123456789012:job-definition/p-dev-converter:1",
                "batch_timeout_seconds": 14400,
                "retry_attempts": 4,
                "table_name": "p-dev-tracking",
            },
        )
        try:
            definition = json.loads(rendered)
        except json.JSONDecodeError as e:
            problem(f"state machine (batch={batch}) does not render to JSON: {e}")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(rendered)
        lint = subprocess.run([statelint, f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if lint.returncode != 0 or lint.stdout.strip():
            problem(f"statelint (batch={batch}): {lint.stdout.strip()} {lint.stderr.strip()}")
        states = definition["States"]
        if batch != ("ConvertOnBatch" in states):
            problem(f"state machine (batch={batch}): ConvertOnBatch presence is wrong")
        # Paths into the execution input ($.x) must be what the manifest-builder sends.
        text = json.dumps(definition)
        for field in set(re.findall(r'"\$\.(\w+)', text)):
            if field in ("result", "error", "lambda_error", "Payload", "JobId", "Status"):
                continue
            if field not in sends:
                problem(f"state machine reads $.{field}, which the manifest-builder does not send ({sorted(sends)})")
        for field in set(re.findall(r'"\$\.Payload\.(\w+)', text)):
            if field not in returns:
                problem(f"state machine reads $.Payload.{field}, which the converter does not return ({sorted(returns)})")
        for name in ("ManifestFailed",):
            if name not in text:
                problem(f"state machine never mentions {name}")
        retry = states["ConvertOnLambda"]["Retry"][0]["ErrorEquals"]
        if "ConverterRetryable" not in retry:
            problem("the converter task does not retry ConverterRetryable")
        if batch and not any("ConverterTimeout" in c["ErrorEquals"] for c in states["ConvertOnLambda"]["Catch"]):
            problem("with Batch, a ConverterTimeout is not routed to Batch")
        for p in deployable.check_mark_failed_retry(states):
            problem(f"{p} (batch={batch})")
    run_rs = open(outcome).read()
    for name in ("ConverterRetryable", "ConverterTimeout"):
        if f'"{name}"' not in run_rs:
            problem(f"the converter no longer names an error {name}, which the state machine matches")


def main():
    root = os.path.abspath(sys.argv[1])
    statelint = os.path.join(os.path.dirname(sys.executable), "statelint")
    modules = {os.path.normpath(d): load_module(d) for d in module_dirs(root)}
    for directory in modules:
        if "/modules/" in directory:
            for required in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
                if not os.path.exists(os.path.join(directory, required)):
                    problem(f"{directory}: {required} is missing")
    check_interfaces(root, modules)
    check_references(root, modules)
    check_alarms(modules)
    check_encryption(modules)
    check_wildcards(modules)
    check_environment(root, modules)
    check_state_machine(root, statelint)
    for p in deployable.run_all(root, modules):
        problem(p)
    for p in PROBLEMS:
        print(p)
    print(f"terraform checks: {len(modules)} modules, {len(PROBLEMS)} problems", file=sys.stderr)
    sys.exit(1 if PROBLEMS else 0)


if __name__ == "__main__":
    main()
