"""Checks of terraform/ that need the AWS provider's schemas or binary (no registry needed).

1. Every argument and block of every `resource` and `data` block exists in provider 5 (the
   filesystem mirror's) and provider 6 (the pinned npm package's schema): provider_schema.py.
2. `terraform validate` of both example roots (examples/dev, examples/prod) with the mirror.
3. `terraform test` with plan/*.tftest.hcl: validations, preconditions, the rendered state
   machine and the provider's policy documents, all at plan time, with fake credentials.

Everything runs in a copy of terraform/ under the build directory (init writes a lock file and
.terraform/ next to the configuration); schemas are cached there too (target/provider-schemas).
Without a provider mirror, 2 and 3 and the provider 5 half of 1 are skipped with a loud line;
without npm, the provider 6 half.

usage: check_providers.py REPO_ROOT   (exit 1 on any problem)
"""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provider_schema  # noqa: E402 - after the path is set

EXAMPLES = ("dev", "prod")


def loud(message):
    print(f"SKIPPED: {message}", flush=True)


class Steps:
    def __init__(self):
        self.failed = []
        self.started = time.monotonic()

    def run(self, name, function):
        began = time.monotonic()
        try:
            problems = function() or []
        except Exception as e:  # a step that cannot run is a failure, reported as such
            problems = [f"{type(e).__name__}: {e}"]
        for p in problems:
            print(f"{name}: {p}", flush=True)
        status = "ok" if not problems else f"{len(problems)} problems"
        print(f"terraform providers: {name}: {status} ({time.monotonic() - began:.1f} s)", file=sys.stderr, flush=True)
        if problems:
            self.failed.append(name)


def terraform(args, cwd, env):
    done = subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip()


def copy_configuration(root, work):
    """terraform/ without local state, plus the packages the lambda module hashes, and the tests."""
    shutil.rmtree(work, ignore_errors=True)
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "terraform.tfvars", "*.tfplan")
    shutil.copytree(os.path.join(root, "terraform"), os.path.join(work, "terraform"), ignore=ignore)
    # The examples point at ../../../dist/*.zip and the tests at ../dist/*.zip: filebase64sha256()
    # only needs them to exist.
    os.makedirs(os.path.join(work, "dist"))
    for name in ("manifest-builder.zip", "converter.zip"):
        open(os.path.join(work, "dist", name), "wb").close()
    tests = os.path.join(work, "terraform", "tests")
    os.makedirs(tests)
    plan_dir = os.path.join(root, "tests", "terraform", "plan")
    for name in sorted(os.listdir(plan_dir)):
        if name.endswith(".tftest.hcl"):
            shutil.copy(os.path.join(plan_dir, name), tests)


def main():
    root = os.path.abspath(sys.argv[1])
    build = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target"))
    cache = os.path.join(build, "provider-schemas")
    work = os.path.join(build, "terraform-check")
    steps = Steps()

    mirror = provider_schema.find_mirror()
    if not mirror:
        loud("no provider mirror (a directory holding registry.terraform.io/hashicorp/aws/<version>/<os_arch>/"
             "terraform-provider-aws_*; set TF_PROVIDER_MIRROR): no provider 5 schema check, terraform validate or terraform test")
    has_npm = shutil.which("npm") is not None
    if not has_npm:
        loud("no npm: no provider 6 schema check")

    schemas = []
    if mirror:
        steps.run("provider 5 schema", lambda: schemas.append(provider_schema.provider5_schema(cache, mirror)))
    if has_npm:
        steps.run(f"provider 6 schema ({provider_schema.CDKTN_PACKAGE}@{provider_schema.CDKTN_VERSION})",
                  lambda: schemas.append(provider_schema.provider6_schema(cache)))

    def check_arguments():
        problems = []
        for path in provider_schema.tf_files(os.path.join(root, "terraform")):
            problems.extend(provider_schema.check_file(path, schemas))
        return problems

    if schemas:
        steps.run("arguments and blocks (provider " + " and ".join(s["provider"] for s in schemas) + ")", check_arguments)

    if mirror:
        if shutil.which("terraform") is None:
            loud("no terraform binary: no terraform validate or terraform test")
        else:
            copy_configuration(root, work)
            # Each root keeps its .terraform/ and lock file next to it, inside the copy.
            env = provider_schema.terraform_environment()
            init = ["init", "-input=false", "-backend=false", f"-plugin-dir={mirror}"]

            def validate(example):
                directory = os.path.join(work, "terraform", "examples", example)
                for args in (init, ["validate"]):
                    code, output = terraform(args, directory, env)
                    if code != 0:
                        return [f"terraform {args[0]}: {output}"]
                return []

            def plan_tests():
                directory = os.path.join(work, "terraform")
                code, output = terraform(init, directory, env)
                if code != 0:
                    return [f"terraform init: {output}"]
                code, output = terraform(["test"], directory, env)
                print(output, flush=True)
                return [] if code == 0 else ["terraform test failed (above)"]

            for example in EXAMPLES:
                steps.run(f"terraform validate examples/{example}", lambda example=example: validate(example))
            steps.run("terraform test (tests/terraform/plan)", plan_tests)
            if not steps.failed:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"terraform providers: the copy is left in {work}", file=sys.stderr)

    print(f"terraform providers: {time.monotonic() - steps.started:.1f} s in all", file=sys.stderr)
    if steps.failed:
        print(f"terraform providers: failed: {', '.join(steps.failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
