"""The hashicorp/aws provider's configuration schema, for both majors versions.tf allows.

`versions.tf` accepts hashicorp/aws ">= 5.80, < 7.0", so every argument and block the
configuration sets must exist in provider 5 and in provider 6 (provider 6 renamed some, e.g.
`aws_batch_compute_environment.compute_environment_name` became `name`). No provider registry
is reachable, so the two schemas come from what is:

* provider 5: `terraform providers schema -json` after `terraform init -plugin-dir=<mirror>`,
  with a filesystem mirror of the provider (found like `find / -name 'terraform-provider-aws_*'`);
* provider 6: the npm package @cdktn/provider-aws (pinned below), whose `.jsii` file describes
  every resource's and data source's configuration. Its properties are camelCase, but each one's
  documentation links the Terraform argument (`.../docs/resources/<type>#<argument>`), which is
  the name used here.

Both are reduced to one compact form and cached under `target/provider-schemas/`, keyed by
version, so reruns neither download nor unpack again:

    {"provider": "5.100.0", "resource": {type: block_id}, "data": {type: block_id},
     "blocks": {block_id: {"args": {name: required}, "blocks": {name: [block_id, required]}}}}

A name listed under "args" must be set as `name = ...`; one under "blocks" as `name { ... }`,
except in provider 6, where the package does not tell a nested block from an attribute of object
type ("kinds_known": false), so either form is accepted.
"""

import glob
import json
import os
import re
import subprocess
import tarfile
import tempfile

# The provider 6 schema: @cdktn/provider-aws 24.1.0 is built from hashicorp/aws 6.45.0.
CDKTN_PACKAGE = "@cdktn/provider-aws"
CDKTN_VERSION = "24.1.0"
# Bump when the compact form changes, so cached files are rebuilt.
FORMAT = 1

META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}


# --- finding and building the schemas ------------------------------------------------------


def find_mirror():
    """The root of a filesystem mirror holding hashicorp/aws, or None.

    `TF_PROVIDER_MIRROR` wins; then the usual places; then a search of the whole file system.
    """
    explicit = os.environ.get("TF_PROVIDER_MIRROR")
    if explicit:
        return explicit if _mirror_binaries(explicit) else None
    home = os.path.expanduser("~")
    for candidate in ["/opt/tf-plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins",
                      os.path.join(home, ".terraform.d", "plugins"), os.path.join(home, ".local", "share", "terraform", "plugins")]:
        if _mirror_binaries(candidate):
            return candidate
    try:
        found = subprocess.run(
            ["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", ")", "-prune",
             "-o", "-name", "terraform-provider-aws_*", "-type", "f", "-print"],
            capture_output=True, text=True, timeout=120,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for binary in found:
        # <root>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_...
        parts = binary.split(os.sep)
        if len(parts) > 6 and parts[-6] == "registry.terraform.io" and parts[-5:-3] == ["hashicorp", "aws"]:
            return os.sep.join(parts[:-6]) or os.sep
    return None


def _mirror_binaries(root):
    return glob.glob(os.path.join(root, "registry.terraform.io", "hashicorp", "aws", "*", "*", "terraform-provider-aws_*"))


def mirror_version(root):
    """The newest provider version in the mirror."""
    versions = {b.split(os.sep)[-3] for b in _mirror_binaries(root)}
    return max(versions, key=lambda v: [int(x) if x.isdigit() else 0 for x in re.split(r"[.-]", v)])


def terraform_environment(data_dir=None):
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    if data_dir:
        env["TF_DATA_DIR"] = data_dir
    # A CLI configuration file that does not exist only prints a warning on every command.
    if env.get("TF_CLI_CONFIG_FILE") and not os.path.exists(env["TF_CLI_CONFIG_FILE"]):
        del env["TF_CLI_CONFIG_FILE"]
    return env


def provider5_schema(cache_dir, mirror, terraform="terraform"):
    """The compact schema of the mirror's provider (cached)."""
    version = mirror_version(mirror)
    path = os.path.join(cache_dir, f"aws-{version}.v{FORMAT}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        with open(os.path.join(work, "versions.tf"), "w") as f:
            f.write('terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = "%s" }\n  }\n}\n' % version)
        env = terraform_environment(os.path.join(work, ".terraform"))
        run([terraform, "init", "-input=false", "-no-color", f"-plugin-dir={mirror}"], cwd=work, env=env)
        raw = run([terraform, "providers", "schema", "-json"], cwd=work, env=env)
    schema = compact_terraform_schema(json.loads(raw), version)
    _write(path, schema)
    return schema


def compact_terraform_schema(raw, version):
    provider = next(v for k, v in raw["provider_schemas"].items() if k.endswith("hashicorp/aws"))
    out = {"provider": version, "kinds_known": True, "resource": {}, "data": {}, "blocks": {}}

    def add(block_id, block):
        args = {}
        for name, attribute in block.get("attributes", {}).items():
            # Computed-only attributes cannot be set.
            if attribute.get("required") or attribute.get("optional"):
                args[name] = bool(attribute.get("required"))
        nested = {}
        for name, block_type in block.get("block_types", {}).items():
            child = f"{block_id}.{name}"
            add(child, block_type["block"])
            nested[name] = [child, block_type.get("min_items", 0) > 0]
        out["blocks"][block_id] = {"args": args, "blocks": nested}

    for kind, key in (("resource", "resource_schemas"), ("data", "data_source_schemas")):
        for type_name, schema in provider.get(key, {}).items():
            block_id = f"{kind}.{type_name}"
            add(block_id, schema["block"])
            out[kind][type_name] = block_id
    return out


def provider6_schema(cache_dir, npm="npm"):
    """The compact schema of provider 6 from the pinned @cdktn/provider-aws (cached)."""
    path = os.path.join(cache_dir, f"aws-6-cdktn-{CDKTN_VERSION}.v{FORMAT}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    os.makedirs(cache_dir, exist_ok=True)
    npm_cache = os.path.join(cache_dir, "npm-cache")
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        # `npm pack` only downloads the tarball: nothing is installed, no script runs.
        run([npm, "pack", f"{CDKTN_PACKAGE}@{CDKTN_VERSION}", "--silent", "--cache", npm_cache,
             "--pack-destination", work], cwd=work)
        tarballs = glob.glob(os.path.join(work, "*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(f"npm pack {CDKTN_PACKAGE}@{CDKTN_VERSION} left {tarballs}")
        with tarfile.open(tarballs[0]) as archive:
            member = archive.getmember("package/.jsii")
            with archive.extractfile(member) as f:
                jsii = json.load(f)
    schema = compact_jsii_schema(jsii)
    _write(path, schema)
    return schema


LINK = re.compile(r"/docs/(resources|data-sources)/(\w+)(?:#(\w+))?")


def compact_jsii_schema(jsii):
    types = jsii["types"]
    provider = None
    out = {"provider": None, "kinds_known": False, "resource": {}, "data": {}, "blocks": {}}

    def doc_link(docs):
        for text in (docs.get("summary", ""), docs.get("remarks", "")):
            match = LINK.search(text)
            if match:
                return match
        return None

    def struct_of(type_ref):
        """The struct fqn a property's type names (directly or as list/map element), or None."""
        if "fqn" in type_ref:
            target = types.get(type_ref["fqn"])
            return type_ref["fqn"] if target and target.get("datatype") else None
        if "collection" in type_ref:
            return struct_of(type_ref["collection"]["elementtype"])
        if "union" in type_ref:
            for option in type_ref["union"]["types"]:
                found = struct_of(option)
                if found:
                    return found
        return None

    def add(fqn):
        if fqn in out["blocks"]:
            return fqn
        out["blocks"][fqn] = {"args": {}, "blocks": {}}  # placeholder: structs may nest themselves
        args, nested = {}, {}
        for prop in types[fqn].get("properties", []):
            link = doc_link(prop.get("docs", {}))
            name = link.group(3) if link and link.group(3) else re.sub(r"(?<!^)([A-Z])", r"_\1", prop["name"]).lower()
            required = not prop.get("optional", False)
            child = struct_of(prop["type"])
            if child:
                nested[name] = [add(child), required]
            else:
                args[name] = required
        out["blocks"][fqn] = {"args": args, "blocks": nested}
        return fqn

    for fqn, spec in types.items():
        if spec.get("kind") != "class" or spec.get("base") not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource"):
            continue
        match = re.search(r"/providers/hashicorp/aws/([0-9.]+)/docs/(resources|data-sources)/(\w+)", spec.get("docs", {}).get("summary", ""))
        if not match:
            continue
        provider = provider or match.group(1)
        config = next((p["type"]["fqn"] for p in spec.get("initializer", {}).get("parameters", []) if p["name"] == "config"), None)
        if not config:
            continue
        kind = "resource" if match.group(2) == "resources" else "data"
        out[kind]["aws_" + match.group(3)] = add(config)
    out["provider"] = provider
    if not out["resource"]:
        raise RuntimeError("no resource found in the .jsii file: its layout changed")
    return out


def run(command, cwd, env=None):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _write(path, schema):
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(schema, f, separators=(",", ":"), sort_keys=True)
    os.replace(partial, path)


# --- checking a configuration --------------------------------------------------------------


def unquote(text):
    if isinstance(text, str) and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def is_block(value):
    """python-hcl2 gives a nested block as a list of dicts marked __is_block__."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def check_file(path, schemas):
    """Problems of every aws_ resource and data block of one .tf file, against every schema."""
    import hcl2  # the suite's .venv-hcl has it; imported here so the schema builders need nothing

    with open(path) as f:
        parsed = hcl2.load(f)
    problems = []
    for kind in ("resource", "data"):
        for entry in parsed.get(kind, []):
            for type_name, instances in entry.items():
                type_name = unquote(type_name)
                if not type_name.startswith("aws_"):
                    continue  # terraform_data and other providers' types
                for name, body in instances.items():
                    where = f"{path}: {'data.' if kind == 'data' else ''}{type_name}.{unquote(name)}"
                    for schema in schemas:
                        problems.extend(check_block(where, kind, type_name, body, schema))
    return problems


def check_block(where, kind, type_name, body, schema):
    label = f"provider {schema['provider']}"
    block_id = schema[kind].get(type_name)
    if block_id is None:
        return [f"{where}: {label} has no {'data source' if kind == 'data' else 'resource'} {type_name}"]
    return _check_body(where, body, block_id, schema, label, top=True)


def _check_body(where, body, block_id, schema, label, top):
    spec = schema["blocks"][block_id]
    kinds_known = schema.get("kinds_known", True)
    problems = []
    seen = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue  # python-hcl2's markers and comments
        if top and key in META_ARGUMENTS:
            continue
        if key == "dynamic":
            for dynamic in value if isinstance(value, list) else [value]:
                for block_name, generator in dynamic.items():
                    block_name = unquote(block_name)
                    seen.add(block_name)
                    contents = [c for c in generator.get("content", []) if isinstance(c, dict)]
                    problems.extend(_check_nested(where, block_name, contents, spec, schema, label, kinds_known, dynamic=True))
            continue
        seen.add(key)
        if is_block(value):
            problems.extend(_check_nested(where, key, value, spec, schema, label, kinds_known, dynamic=False))
        elif key in spec["args"]:
            continue
        elif key in spec["blocks"] and not kinds_known:
            continue  # provider 6's package does not tell an object attribute from a block
        elif key in spec["blocks"]:
            problems.append(f"{where}: {label}: {key} is a block (`{key} {{ ... }}`), not an argument")
        else:
            problems.append(f"{where}: {label} has no argument {key}")
    for name, required in spec["args"].items():
        if required and name not in seen:
            problems.append(f"{where}: {label} requires argument {name}")
    for name, (_, required) in spec["blocks"].items():
        if required and name not in seen:
            problems.append(f"{where}: {label} requires block {name}")
    return problems


def _check_nested(where, name, contents, spec, schema, label, kinds_known, dynamic):
    if name in spec["blocks"]:
        child = spec["blocks"][name][0]
        problems = []
        for content in contents:
            problems.extend(_check_body(f"{where}.{name}", content, child, schema, label, top=False))
        return problems
    if name in spec["args"] and not kinds_known:
        return []
    if name in spec["args"]:
        return [f"{where}: {label}: {name} is an argument (`{name} = ...`), not a block"]
    return [f"{where}: {label} has no {'dynamic ' if dynamic else ''}block {name}"]


def tf_files(directory):
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d != ".terraform")
        for name in sorted(filenames):
            if name.endswith(".tf"):
                yield os.path.join(dirpath, name)
