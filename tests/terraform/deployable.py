"""Static checks of terraform/ for mistakes that only show at deployment or in production.

Each function takes the repository root and the parsed modules ({directory: (merged hcl2
blocks, {path: text})}, as check_terraform.py loads them) and returns a list of problems. The
plan-time half of these checks (the same rules, evaluated by Terraform) is in plan/*.tftest.hcl.

1. no `s3:prefix` condition value is empty or only "*" (either would let a role list a whole
   bucket);
2. every role that reads objects of a bucket may also list that bucket (S3 answers a missing
   object with 403 otherwise, and the converter cannot tell it from a transient denial);
3. no data source is declared and never used, and none is read through an attribute provider 6
   deprecates (`aws_region.name`);
4. the key policy grants no role directly (IAM policies do, through the account statement),
   lets Step Functions' log delivery decrypt, names no service that does not use the key; the
   Batch execution role has no KMS permission;
5. every converter alarm on an EMF metric has a Batch twin, and every Batch alarm's metric is
   produced by a metric filter on the Batch log group whose pattern matches the line
   shared/src/metrics.rs writes;
6. the notification queue keeps messages for less time than its dead-letter queue;
7. bucket names are validated against S3's 63 characters, at the module and at the root;
8. `enable_batch` without its image, repository, subnets or security groups fails validation;
9. the Batch state's timeout covers every attempt of the job, and the state machine has an
   overall timeout;
10. the state machine's DynamoDB retry names only errors the integration raises, and retries
    everything but a failed condition.
"""

import json
import os
import re

# DynamoDB UpdateItem's errors (DynamoDB API Reference, UpdateItem, "Errors", and "Common
# Errors"); the optimized integration prefixes them with "DynamoDB.", and raises
# DynamoDB.AmazonDynamoDBException for the others.
DYNAMODB_UPDATE_ITEM_ERRORS = {
    "ConditionalCheckFailedException", "InternalServerError", "ItemCollectionSizeLimitExceededException",
    "ProvisionedThroughputExceededException", "ReplicatedWriteConflictException", "RequestLimitExceeded",
    "ResourceNotFoundException", "ThrottlingException", "TransactionConflictException", "AmazonDynamoDBException",
}


def unquote(text):
    """A python-hcl2 string literal ("\\"abc\\"") as its text; expressions stay as they are."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def named(parsed, kind):
    """(type, name, body) of every resource or data block."""
    for entry in parsed.get(kind, []):
        for type_name, instances in entry.items():
            for name, body in instances.items():
                yield unquote(type_name), unquote(name), body


def module_locals(module):
    merged = {}
    for entry in module["locals"]:
        merged.update({k: v for k, v in entry.items() if not k.startswith("__")})
    return merged


def variable_blocks(module):
    out = {}
    for entry in module["variable"]:
        for name, body in entry.items():
            out[unquote(name)] = body
    return out


def module_dir(root, name):
    return os.path.normpath(os.path.join(root, "terraform", "modules", name)) if name else os.path.normpath(os.path.join(root, "terraform"))


def code_of(texts):
    """The module's text without comments (comments are prose, not references)."""
    return "\n".join(re.sub(r"#[^\n]*", "", t) for t in texts.values())


# --- IAM documents ------------------------------------------------------------------------


def statements(body):
    """The statements of an aws_iam_policy_document, dynamic ones included, as plain dicts."""
    found = []
    for statement in as_list(body.get("statement")):
        found.append(statement)
    for dynamic in as_list(body.get("dynamic")):
        for label, generator in dynamic.items():
            if unquote(label) == "statement":
                found.extend(as_list(generator.get("content")))
    return [s for s in found if isinstance(s, dict)]


def conditions(statement):
    found = list(as_list(statement.get("condition")))
    for dynamic in as_list(statement.get("dynamic")):
        for label, generator in dynamic.items():
            if unquote(label) == "condition":
                found.extend(as_list(generator.get("content")))
    return [c for c in found if isinstance(c, dict)]


def strings(value, local_values):
    """The strings of a list attribute, `${local.x}` lists expanded."""
    out = []
    for item in as_list(value):
        if isinstance(item, str):
            local = re.fullmatch(r"\$\{local\.(\w+)\}", item)
            if local and local.group(1) in local_values:
                out.extend(strings(local_values[local.group(1)], local_values))
            else:
                out.append(unquote(item))
    return out


def policy_documents(modules):
    """(directory, name, [statement]) of every aws_iam_policy_document."""
    for directory, (module, _) in modules.items():
        for type_name, name, body in named(module, "data"):
            if type_name == "aws_iam_policy_document":
                yield directory, name, statements(body), module_locals(module)


def check_prefix_conditions(root, modules):
    problems = []
    for directory, name, found, _ in policy_documents(modules):
        for statement in found:
            for condition in conditions(statement):
                if unquote(condition.get("variable")) != "s3:prefix":
                    continue
                for value in as_list(condition.get("values")):
                    text = unquote(value)
                    if isinstance(text, str) and set(text) <= {"*"}:
                        problems.append(
                            f"{directory}: policy {name}, statement {unquote(statement.get('sid', '?'))}: s3:prefix value {value!r} lets the role list the whole bucket"
                        )
    return problems


BUCKET_REFERENCE = re.compile(r"\$\{(var\.\w*bucket_arn)\}")


def check_listing_for_reads(root, modules):
    problems = []
    checked = 0
    for directory, name, found, local_values in policy_documents(modules):
        allowed = [s for s in found if unquote(s.get("effect", '"Allow"')) == "Allow"]
        listable = set()
        for statement in allowed:
            if "s3:ListBucket" in strings(statement.get("actions"), local_values):
                listable.update(strings(statement.get("resources"), local_values))
        for statement in allowed:
            if "s3:GetObject" not in strings(statement.get("actions"), local_values):
                continue
            for resource in strings(statement.get("resources"), local_values):
                for bucket in BUCKET_REFERENCE.findall(resource):
                    checked += 1
                    if "${%s}" % bucket not in listable:
                        problems.append(
                            f"{directory}: policy {name} reads objects of ${{{bucket}}} but may not list it: S3 answers a missing object with 403 AccessDenied instead of 404 NoSuchKey"
                        )
    if checked == 0:
        problems.append("no IAM statement reads a bucket's objects: the listing check would prove nothing")
    return problems


# --- data sources ---------------------------------------------------------------------------


def check_data_sources(root, modules):
    problems = []
    for directory, (module, texts) in modules.items():
        code = code_of(texts)
        for type_name, name, _ in named(module, "data"):
            if not re.search(r"\bdata\.%s\.%s\b" % (re.escape(type_name), re.escape(name)), code):
                problems.append(f"{directory}: data.{type_name}.{name} is declared but never used")
        for reference in sorted(set(re.findall(r"\bdata\.aws_region\.\w+\.name\b", code))):
            problems.append(f"{directory}: {reference} is deprecated in provider 6; `.id` is the region in 5 and 6")
    return problems


# --- KMS ---------------------------------------------------------------------------------------


def check_key_policy(root, modules):
    problems = []
    kms = module_dir(root, "kms")
    module = modules[kms][0]
    key = [body for t, n, body in named(module, "data") if t == "aws_iam_policy_document" and n == "key"]
    if not key:
        return [f"{kms}: data.aws_iam_policy_document.key not found"]
    services = {}
    for statement in statements(key[0]):
        sid = unquote(statement.get("sid", "?"))
        actions = [unquote(a) for a in as_list(statement.get("actions"))]
        for principal in as_list(statement.get("principals")):
            kind = unquote(principal.get("type"))
            identifiers = [unquote(i) for i in as_list(principal.get("identifiers"))]
            if kind == "AWS":
                for identifier in identifiers:
                    if not re.fullmatch(r"arn:aws:iam::\$\{[\w.]+\}:root", str(identifier)):
                        problems.append(
                            f"{kms}: key policy statement {sid} grants {identifier} directly; roles get the key through their IAM policies (the account statement enables them), or every narrower IAM statement is moot"
                        )
            elif kind == "Service":
                for identifier in identifiers:
                    services.setdefault(identifier, set()).update(actions)
    # Step Functions Developer Guide, "Data at rest encryption": a state machine encrypted with a
    # customer managed key that logs to CloudWatch Logs needs log delivery to decrypt.
    if "kms:Decrypt" not in services.get("delivery.logs.amazonaws.com", set()):
        problems.append(f"{kms}: the key policy does not let delivery.logs.amazonaws.com kms:Decrypt, which the encrypted state machine's logging needs")
    all_code = "\n".join(code_of(texts) for _, texts in modules.values())
    event_targets_to_queues = re.search(r'resource\s+"aws_cloudwatch_event_target"[^}]*arn\s*=\s*aws_(sqs_queue|sns_topic)', all_code)
    if "events.amazonaws.com" in services and not event_targets_to_queues:
        problems.append(f"{kms}: the key policy names events.amazonaws.com, but no EventBridge target delivers to an encrypted queue or topic")
    iam = module_dir(root, "iam")
    for type_name, name, body in named(modules[iam][0], "data"):
        if type_name == "aws_iam_policy_document" and name == "batch_execution":
            for statement in statements(body):
                kms_actions = [a for a in (unquote(x) for x in as_list(statement.get("actions"))) if a.startswith("kms:")]
                if kms_actions:
                    problems.append(f"{iam}: the Batch execution role has {kms_actions}, which pulling the image and writing logs do not need")
    return problems


# --- Batch metrics ---------------------------------------------------------------------------


def emitted_metric_names(root):
    """Metric names the converter passes to metrics.count/add (its Lambda and Batch entries)."""
    names = set()
    for directory, _, filenames in os.walk(os.path.join(root, "converter", "src")):
        for filename in filenames:
            if filename.endswith(".rs"):
                with open(os.path.join(directory, filename)) as f:
                    text = f.read()
                for call in re.finditer(r"metrics\s*\.\s*(?:count|add)\((.*?)\);", text, re.S):
                    names.update(re.findall(r'"([A-Z]\w+)"', call.group(1)))
    return names


def emf_line(root, function, values):
    """An EMF line as shared/src/metrics.rs writes it (its shape is checked against the source)."""
    path = os.path.join(root, "shared", "src", "metrics.rs")
    with open(path) as f:
        text = f.read()
    namespace = re.search(r'pub const NAMESPACE: &str = "(\w+)";', text)
    for piece in ('"_aws"', '"CloudWatchMetrics"', '"Namespace": NAMESPACE', '"Dimensions": [["Function"]]', 'document.insert("Function"'):
        if piece not in text:
            raise ValueError(f"{path} no longer contains {piece}: update the EMF line this check builds")
    return {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [{
                "Namespace": namespace.group(1),
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
            }],
        },
        "Function": function,
        **values,
    }, namespace.group(1)


def json_path(document, path):
    """The value at a filter pattern's $.a.b[0].c, or a sentinel when absent."""
    current = document
    for key, index in re.findall(r"\.(\w+)|\[(\d+)\]", path[1:]):
        if key:
            if not isinstance(current, dict) or key not in current:
                return MISSING
            current = current[key]
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                return MISSING
            current = current[int(index)]
    return current


MISSING = object()


def filter_matches(pattern, document):
    """CloudWatch Logs JSON filter patterns, the subset used here: `{ (c) && (c) }` with
    c = `$.path OP value`, OP one of = != >= <= > <, value a number or a quoted string."""
    body = re.fullmatch(r"\{\s*(.*?)\s*\}", pattern.strip(), re.S)
    if not body:
        raise ValueError(f"not a JSON filter pattern: {pattern}")
    for term in re.split(r"\s*&&\s*", body.group(1)):
        term = term.strip()
        if term.startswith("(") and term.endswith(")"):
            term = term[1:-1].strip()
        match = re.fullmatch(r'(\$[\w.\[\]]+)\s*(=|!=|>=|<=|>|<)\s*("(?:[^"]*)"|-?[0-9.]+)', term)
        if not match:
            raise ValueError(f"term outside the supported subset: {term}")
        path, op, literal = match.groups()
        value = json_path(document, path)
        if value is MISSING:
            return False
        if literal.startswith('"'):
            if op not in ("=", "!=") or not isinstance(value, str):
                return False
            ok = (value == literal[1:-1]) == (op == "=")
        else:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return False
            number = float(literal)
            ok = {"=": value == number, "!=": value != number, ">=": value >= number,
                  "<=": value <= number, ">": value > number, "<": value < number}[op]
        if not ok:
            return False
    return True


def check_batch_metrics(root, modules):
    problems = []
    monitoring = module_dir(root, "monitoring")
    module = modules[monitoring][0]
    local_values = module_locals(module)
    alarms = set()

    def collect(value):
        if isinstance(value, dict):
            if "function" in value and "metric" in value:
                alarms.add((unquote(value["function"]), unquote(value["metric"])))
            for v in value.values():
                collect(v)

    collect(local_values)
    for function, metric in sorted(alarms):
        if function == "converter" and ("converter-batch", metric) not in alarms:
            problems.append(f"{monitoring}: the {metric} alarm covers Function=converter only; the Batch converter (converter-batch) has none")
    batch_metrics = {m for f, m in alarms if f == "converter-batch"}
    if not batch_metrics:
        problems.append(f"{monitoring}: no alarm on the Batch converter's metrics")

    emitted = emitted_metric_names(root)
    filtered = {}
    for directory, (parsed, _) in modules.items():
        values = module_locals(parsed)
        for type_name, name, body in named(parsed, "resource"):
            if type_name != "aws_cloudwatch_log_metric_filter":
                continue
            source = re.search(r"local\.(\w+)\s*:\s*\{\}\}$|^\$\{local\.(\w+)\}$", str(body.get("for_each", "")))
            keys = {}
            if source:
                keys = values.get(source.group(1) or source.group(2), {})
            for transformation in as_list(body.get("metric_transformation")):
                namespace = unquote(transformation.get("namespace", ""))
                namespace = unquote(values.get("namespace", namespace)) if namespace == "${local.namespace}" else namespace
                for metric in (keys if unquote(transformation.get("name")) == "${each.key}" else [unquote(transformation.get("name"))]):
                    filtered[metric] = (directory, name, body, transformation, namespace)
    for metric in sorted(batch_metrics):
        if metric not in filtered:
            problems.append(f"{monitoring}: alarm on {metric} of converter-batch, but no metric filter produces it: outside Lambda EMF lines are only log lines")
    for metric, (directory, name, body, transformation, namespace) in sorted(filtered.items()):
        where = f"{directory}: aws_cloudwatch_log_metric_filter.{name}[{metric}]"
        if metric not in emitted:
            problems.append(f"{where}: the converter emits no metric {metric} ({sorted(emitted)})")
        dimensions = transformation.get("dimensions", {})
        if unquote(dimensions.get("Function", "")) != "$.Function":
            problems.append(f"{where}: the Function dimension must come from the line ($.Function)")
        if unquote(transformation.get("value")).replace("${each.key}", metric) != f"$.{metric}":
            problems.append(f"{where}: the value must be the line's $.{metric}")
        try:
            line, rust_namespace = emf_line(root, "converter-batch", {metric: 3.0, "RowsWritten": 10.0})
            if namespace != rust_namespace:
                problems.append(f"{where}: namespace {namespace!r}, but the binaries write {rust_namespace!r}")
            pattern = unquote(body.get("pattern", "")).replace("${each.key}", metric).replace("${local.namespace}", rust_namespace)
            if not filter_matches(pattern, line):
                problems.append(f"{where}: pattern {pattern} does not match the EMF line {json.dumps(line)}")
            if filter_matches(pattern, {"level": "INFO", "message": "manifest completed", metric: 1}):
                problems.append(f"{where}: pattern {pattern} also matches log lines that are not EMF")
        except ValueError as e:
            problems.append(f"{where}: {e}")
    return problems


# --- SQS, names, Batch settings, timeouts -------------------------------------------------------


def default_of(variables, expression):
    """The default of `${var.x}`, or a literal number, or None."""
    if isinstance(expression, (int, float)):
        return expression
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(expression))
    if match and match.group(1) in variables:
        return variables[match.group(1)].get("default")
    return None


def check_queue_retention(root, modules):
    problems = []
    sqs = module_dir(root, "sqs")
    module, texts = modules[sqs]
    variables = variable_blocks(module)
    queues = {name: body for t, name, body in named(module, "resource") if t == "aws_sqs_queue"}
    source = queues.get("this", {}).get("message_retention_seconds")
    dlq = queues.get("dlq", {}).get("message_retention_seconds")
    # What the root passes, when it passes something.
    root_module = modules[module_dir(root, None)][0]
    root_variables = variable_blocks(root_module)
    for entry in root_module["module"]:
        for call, body in entry.items():
            if unquote(call) == "sqs" and "message_retention_seconds" in body:
                passed = default_of(root_variables, body["message_retention_seconds"])
                if passed is not None and re.fullmatch(r"\$\{var\.message_retention_seconds\}", str(source)):
                    source = passed
    source_days, dlq_days = default_of(variables, source), default_of(variables, dlq)
    if source_days is None or dlq_days is None:
        problems.append(f"{sqs}: cannot tell the retention of the queue ({source}) or its DLQ ({dlq})")
    elif not source_days < dlq_days:
        problems.append(
            f"{sqs}: the queue keeps messages {source_days} s and its DLQ {dlq_days} s; a dead-lettered message keeps its first enqueue time, so the DLQ must keep longer"
        )
    if not re.search(r"var\.message_retention_seconds\s*<\s*var\.dlq_message_retention_seconds", code_of(texts)):
        problems.append(f"{sqs}: no precondition or validation keeps message_retention_seconds below dlq_message_retention_seconds")
    return problems


def validation_conditions(body):
    return [str(v.get("condition", "")) for v in as_list(body.get("validation"))]


def check_bucket_name_validation(root, modules):
    problems = []
    s3 = module_dir(root, "s3")
    for name, body in variable_blocks(modules[s3][0]).items():
        if name.endswith("_bucket_name") and not any("{1,61}" in c or "63" in c for c in validation_conditions(body)):
            problems.append(f"{s3}: variable {name} is not checked against S3's 63 characters")
    root_variables = variable_blocks(modules[module_dir(root, None)][0])
    together = [c for n in ("project", "environment") for c in validation_conditions(root_variables.get(n, {}))
                if "var.project" in c and "var.environment" in c]
    if not together:
        problems.append("terraform: no validation bounds project and environment together, which the bucket names are built of")
    return problems


def check_batch_settings(root, modules):
    problems = []
    root_variables = variable_blocks(modules[module_dir(root, None)][0])
    for name in ("batch_image", "batch_image_repository_arn", "batch_subnet_ids", "batch_security_group_ids"):
        if not any("var.enable_batch" in c and f"var.{name}" in c for c in validation_conditions(root_variables.get(name, {}))):
            problems.append(f"terraform: variable {name} is not required when enable_batch is true")
    return problems


def check_timeouts(root, modules):
    problems = []
    batch = module_dir(root, "batch")
    outputs = {}
    for entry in modules[batch][0]["output"]:
        outputs.update({unquote(k): v for k, v in entry.items()})
    job_timeout = str(outputs.get("job_timeout_seconds", {}).get("value", ""))
    if not ("var.retry_attempts" in job_timeout and "var.attempt_timeout_seconds" in job_timeout):
        problems.append(f"{batch}: no output job_timeout_seconds covering every attempt (retry_attempts x attempt_timeout_seconds)")
    root_module = modules[module_dir(root, None)][0]
    for entry in root_module["module"]:
        for call, body in entry.items():
            if unquote(call) == "step_functions" and "module.batch[0].job_timeout_seconds" not in str(body.get("batch_timeout_seconds", "")):
                problems.append("terraform: the Batch state's timeout (step_functions batch_timeout_seconds) is not the Batch job's job_timeout_seconds")
    step_functions = module_dir(root, "step_functions")
    code = code_of(modules[step_functions][1])
    with open(os.path.join(step_functions, "definition.asl.json")) as f:
        template = f.read()
    top_level = re.search(r'^  "TimeoutSeconds"', template, re.M)
    if not top_level and not re.search(r"TimeoutSeconds\s*=\s*var\.execution_timeout_seconds", code):
        problems.append(f"{step_functions}: the state machine has no overall TimeoutSeconds")
    return problems


def check_mark_failed_retry(states):
    """Problems of the MarkFailed state's Retry (rendered definition's States)."""
    problems = []
    mark = states.get("MarkFailed", {})
    retriers = mark.get("Retry", [])
    for retrier in retriers:
        for name in retrier.get("ErrorEquals", []):
            if name.startswith("DynamoDB.") and name[len("DynamoDB."):] not in DYNAMODB_UPDATE_ITEM_ERRORS:
                problems.append(f"state machine: MarkFailed retries {name}, which the DynamoDB integration never raises")
    if not retriers or retriers[-1].get("ErrorEquals") != ["States.ALL"]:
        problems.append("state machine: MarkFailed does not retry every error (last retrier States.ALL): a missed error name fails the execution without marking the manifest")
    # The first retrier naming an error decides; a failed condition means the converter already
    # settled the manifest, so it must meet a MaxAttempts 0 retrier before any that retries it.
    for retrier in retriers:
        names = retrier.get("ErrorEquals", [])
        if "DynamoDB.ConditionalCheckFailedException" in names or "States.ALL" in names:
            if retrier.get("MaxAttempts", 3) != 0:
                problems.append("state machine: MarkFailed retries DynamoDB.ConditionalCheckFailedException (a failed condition: the converter already settled the manifest)")
            break
    return problems


CHECKS = [
    check_prefix_conditions,
    check_listing_for_reads,
    check_data_sources,
    check_key_policy,
    check_batch_metrics,
    check_queue_retention,
    check_bucket_name_validation,
    check_batch_settings,
    check_timeouts,
]


def run_all(root, modules):
    problems = []
    for check in CHECKS:
        problems.extend(check(root, modules))
    return problems
