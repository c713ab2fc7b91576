"""`terraform apply` of the pipeline on the local AWS, and `terraform destroy` afterwards.

The root applied is tests/terraform/local: one instance of the repository's root module
(terraform/) per pipeline asked for, with the provider's endpoints pointing at the emulator.
Terraform runs from a staged copy under the work directory (WORKDIR/stage/terraform and
WORKDIR/stage/tests/terraform/local, the repository's layout, so the relative module source
resolves as it does in the tree): `.terraform`, the lock file, the plugin data and the state
all stay under the work directory, never in the repository.

The provider comes from a filesystem mirror (`terraform init -plugin-dir`, no registry):
$NDJSON_PARQUET_TF_PLUGIN_DIR, else /opt/tf-plugins, else the first directory found holding
`registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/terraform-provider-aws_*`.

AWS Batch is switched off (`enable_batch = false`: moto runs Batch jobs only in Docker); its
module is still validated against the mirrored provider, with the rest of the configuration,
by the apply.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import time
import zipfile
from dataclasses import asdict, dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOCAL_ROOT = os.path.join("tests", "terraform", "local")
PROVIDER_PATH = os.path.join("registry.terraform.io", "hashicorp", "aws")
MIRROR_ENV = "NDJSON_PARQUET_TF_PLUGIN_DIR"


class TerraformUnavailable(RuntimeError):
    """No terraform binary, or no provider mirror: nothing can be applied."""


class TerraformFailed(RuntimeError):
    pass


@dataclass
class PipelineVariables:
    """One pipeline's variables of tests/terraform/local (each a variable of the root
    module), with timings shortened for a local run. What the root module does not expose
    stays as it deploys: the queue's visibility timeout (6 x builder_timeout_seconds), the
    sweep's repair delay (builder_timeout_seconds + 60), the batches' settle time
    (builder_timeout_seconds + 10), the release delay of a failed manifest
    (converter_timeout_seconds + 60), the state machine's retries, the
    event-source mapping's maximum concurrency, the sweep's schedule (rate(1 minute))."""

    log_level: str = "INFO"
    compression_type: str = "zstd"
    max_files_per_manifest: int = 100
    max_bytes_per_manifest: int = 1 << 30
    # A manifest that is not full is cut once its oldest batch waited this long.
    max_wait_seconds: int = 2
    max_attempts: int = 3
    # Batch partitions per date (each invocation writes to one; a manifest takes one's batches).
    shards: int = 16
    max_receive_count: int = 5
    timestamp_unit: str = "us"
    target_file_bytes: int = 128 << 20
    notification_suffixes: list[str] = field(
        default_factory=lambda: [".ndjson", ".jsonl", ".json", ".gz", ".zst"]
    )
    # Also the sweep's repair delay (+ 60 s) and the batches' settle time (+ 10 s: no manifest is
    # cut sooner): the sweep never overtakes a live builder.
    builder_timeout_seconds: int = 15
    # Also the release delay of a failed manifest (+ 60 s): its converters are gone by then.
    converter_timeout_seconds: int = 120
    # Also the converter's memory budget (80%), which sizes its upload parts: 16 MiB from a
    # 1 GiB budget up, else 5 MiB (the smallest S3 allows).
    converter_memory_mb: int = 3008
    sqs_batch_size: int = 10
    sqs_batching_window_seconds: int = 0
    # The sweep asks Step Functions about a manifest running this long without change (an
    # execution that ended without settling it: aborted, or timed out).
    reconcile_after_seconds: int = 600


def find_terraform() -> str | None:
    return os.environ.get("TERRAFORM") or shutil.which("terraform")


def find_provider_mirror() -> str | None:
    """The root of a filesystem mirror holding hashicorp/aws for this machine, or None."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    target = f"{platform.system().lower()}_{arch}"

    def holds_provider(root: str) -> bool:
        pattern = os.path.join(root, PROVIDER_PATH, "*", target, "terraform-provider-aws_*")
        return bool(glob.glob(pattern))

    explicit = os.environ.get(MIRROR_ENV)
    if explicit:
        return explicit if holds_provider(explicit) else None
    candidates = ["/opt/tf-plugins", os.path.expanduser("~/.terraform.d/plugins"), "/usr/share/terraform/plugins"]
    for root in candidates:
        if holds_provider(root):
            return root
    # A wider search, as `find / -name 'terraform-provider-aws_*'` would do, in the usual
    # places and a few levels deep (a home directory holds large caches: no full walk).
    for base in ("/opt", "/usr/local", "/usr/share", "/srv", os.path.expanduser("~")):
        for depth in range(1, 4):
            pattern = os.path.join(base, *["*"] * depth, PROVIDER_PATH, "*", target, "terraform-provider-aws_*")
            for path in glob.glob(pattern):
                return path[: path.index(PROVIDER_PATH)].rstrip(os.sep)
    return None


def lambda_package(path: str) -> str:
    """A package with a `bootstrap` that is never run: the emulator runs the local binaries as
    the functions (`lambda_runtime`). Terraform needs a file to upload."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with zipfile.ZipFile(path, "w") as z:
            info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            z.writestr(info, "#!/bin/sh\necho 'a placeholder: the local AWS runs the binary itself' >&2\nexit 1\n")
    return path


class Deployment:
    """The pipelines of tests/terraform/local, applied to the emulator at `endpoint`."""

    def __init__(self, endpoint: str, workdir: str, pipelines: dict[str, PipelineVariables], parallelism: int = 40):
        for name in pipelines:
            if not re.fullmatch(r"[a-z][a-z0-9]{1,11}", name):
                raise ValueError(f"pipeline name {name!r}: 2-12 lower-case letters and digits (the root module's environment)")
        self.terraform = find_terraform()
        self.mirror = find_provider_mirror()
        if not self.terraform:
            raise TerraformUnavailable("no terraform binary on PATH (or $TERRAFORM)")
        if not self.mirror:
            raise TerraformUnavailable(f"no provider mirror (of hashicorp/aws for this machine; or set ${MIRROR_ENV})")
        self.endpoint = endpoint
        self.workdir = os.path.abspath(workdir)
        self.pipelines = pipelines
        self.parallelism = parallelism
        self.stage = os.path.join(self.workdir, "stage")
        self.root = os.path.join(self.stage, LOCAL_ROOT)
        self.applied = False
        self.resources = 0
        self.outputs: dict[str, dict] = {}

    # Running terraform --------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
        env.update(
            TF_DATA_DIR=os.path.join(self.workdir, "data"),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            # No user configuration (provider installation, credentials helpers) applies.
            TF_CLI_CONFIG_FILE=os.devnull,
        )
        # $NDJSON_PARQUET_TF_LOG=DEBUG (or TRACE): Terraform's and the provider's own log,
        # every request and response included, in WORKDIR/terraform-debug.log.
        if os.environ.get("NDJSON_PARQUET_TF_LOG"):
            env.update(TF_LOG=os.environ["NDJSON_PARQUET_TF_LOG"], TF_LOG_PATH=os.path.join(self.workdir, "terraform-debug.log"))
        return env

    def _run(self, *args: str, log: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
        """Runs terraform in the staged root; its output goes to WORKDIR/`log` as it comes
        (and is returned too with `capture`, for machine-readable output)."""
        path = os.path.join(self.workdir, log)
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"\n$ terraform {' '.join(args)}\n")
            out.flush()
            start = out.tell()
            result = subprocess.run(
                [self.terraform, *args], cwd=self.root, env=self._env(), text=True,
                stdout=subprocess.PIPE if capture else out, stderr=out,
            )
        if not capture:
            with open(path, encoding="utf-8") as f:
                f.seek(start)
                result.stdout = f.read()
        if check and result.returncode != 0:
            errors = [line.strip("│ ") for line in result.stdout.splitlines() if line.strip("│ ").startswith("Error:")][:3]
            raise TerraformFailed(f"terraform {args[0]} failed ({path}): {'; '.join(errors) or result.stdout[-300:]}")
        return result

    def _stage(self) -> None:
        """Copies terraform/ and the local root into the stage (fresh: state from an earlier
        run describes an emulator that is gone)."""
        shutil.rmtree(self.stage, ignore_errors=True)
        shutil.copytree(
            os.path.join(ROOT, "terraform"),
            os.path.join(self.stage, "terraform"),
            ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
        )
        os.makedirs(self.root)
        for name in os.listdir(os.path.join(ROOT, LOCAL_ROOT)):
            if name.endswith(".tf"):
                shutil.copy2(os.path.join(ROOT, LOCAL_ROOT, name), self.root)
        package = lambda_package(os.path.join(self.workdir, "bootstrap.zip"))
        variables = {
            "endpoint": self.endpoint,
            "manifest_builder_package": package,
            "converter_package": package,
            "lambda_architecture": "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64",
            "pipelines": {name: asdict(v) for name, v in self.pipelines.items()},
        }
        with open(os.path.join(self.root, "local.auto.tfvars.json"), "w") as f:
            json.dump(variables, f, indent=2)

    # The deployment -------------------------------------------------------------------------

    def apply(self) -> dict[str, dict]:
        """Stages, initialises and applies; returns each pipeline's outputs by name."""
        os.makedirs(self.workdir, exist_ok=True)
        for log in ("apply.log", "destroy.log"):
            if os.path.exists(os.path.join(self.workdir, log)):
                os.remove(os.path.join(self.workdir, log))
        self._stage()
        self._run("init", "-no-color", f"-plugin-dir={self.mirror}", log="apply.log")
        self.applied = True  # from here on, destroy whatever part of the apply happened
        applied = self._run("apply", "-auto-approve", "-no-color", f"-parallelism={self.parallelism}", log="apply.log")
        counted = re.search(r"Apply complete! Resources: (\d+) added", applied.stdout)
        self.resources = int(counted.group(1)) if counted else 0
        outputs = self._run("output", "-json", "pipelines", log="apply.log", capture=True)
        self.outputs = json.loads(outputs.stdout)
        return self.outputs

    def destroy(self) -> None:
        if not self.applied:
            return
        self._run("destroy", "-auto-approve", "-no-color", f"-parallelism={self.parallelism}", log="destroy.log")
        self.applied = False

    def timed(self, what: str):
        """`apply` or `destroy`, returning its seconds too."""
        started = time.monotonic()
        result = getattr(self, what)()
        return result, time.monotonic() - started
