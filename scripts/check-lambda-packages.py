#!/usr/bin/env python3
"""Checks Lambda deployment packages (the zips scripts/package-lambdas.sh writes).

Each zip must hold an executable `bootstrap` at its root that is a 64-bit little-endian ELF
executable for the expected machine, stripped of its symbol table, linked only against glibc
and libgcc, and requiring no glibc symbol version newer than Lambda's provided.al2023 runtime
has (Amazon Linux 2023: glibc 2.34). It prints one line per package:

    manifest-builder.zip: 7.1 MB zipped, 17.1 MB bootstrap, GLIBC_2.30, aarch64, stripped

Then, when an emulator is at hand (qemu-aarch64 with Debian's libc6-arm64-cross, or the host
itself for its own architecture), it starts each bootstrap with an empty environment: it must
get as far as its configuration check and stop there with one JSON error line and exit status 1.
Without one, that smoke run is skipped with a note (or fails, with --require-smoke).

Python standard library only. Exit status 0 when every package passes, 1 otherwise.
"""

import argparse
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

# Amazon Linux 2023, the OS of Lambda's provided.al2023 runtime, ships glibc 2.34.
MAX_GLIBC = (2, 34)

ARCHES = {
    # arch: (e_machine, name, program interpreter, qemu user emulator, its sysroot)
    "arm64": (183, "aarch64", "/lib/ld-linux-aarch64.so.1", "qemu-aarch64", "/usr/aarch64-linux-gnu"),
    "x86_64": (62, "x86_64", "/lib64/ld-linux-x86-64.so.2", "qemu-x86_64", "/usr/x86_64-linux-gnu"),
}
DEBIAN_ARCHES = {"aarch64": "arm64", "x86_64": "amd64"}
MACHINE_NAMES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}

# What the runtime's base image provides: glibc's libraries and libgcc.
ALLOWED_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1",
    "libgcc_s.so.1", "ld-linux-aarch64.so.1", "ld-linux-x86-64.so.2",
}

ET_EXEC, ET_DYN = 2, 3
PT_INTERP = 3
SHT_SYMTAB, SHT_DYNAMIC, SHT_GNU_VERNEED = 2, 6, 0x6FFFFFFE
DT_NULL, DT_NEEDED = 0, 1
SMOKE_TIMEOUT_SECONDS = 120


class Bad(Exception):
    """A package that does not pass."""


def c_string(data, offset):
    end = data.find(b"\0", offset)
    if end < 0:
        raise Bad("corrupt ELF: unterminated string")
    return data[offset:end].decode("utf-8", "replace")


def read_elf(data, machine, machine_name, interpreter):
    """Checks the ELF header and returns its facts: dynamic libraries, glibc versions, stripped."""
    if data[:4] != b"\x7fELF":
        raise Bad("bootstrap is not an ELF file (starts with %r)" % data[:4])
    if data[4] != 2:
        raise Bad("bootstrap is a 32-bit ELF (EI_CLASS %d), expected 64-bit" % data[4])
    if data[5] != 1:
        raise Bad("bootstrap is a big-endian ELF, expected little-endian")
    try:
        e_type, e_machine = struct.unpack_from("<HH", data, 0x10)
        (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 0x20)
        e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    except struct.error:
        raise Bad("corrupt ELF: truncated header")
    if e_machine != machine:
        raise Bad(
            "bootstrap is built for %s (e_machine %d), expected %s (e_machine %d)"
            % (MACHINE_NAMES.get(e_machine, "an unknown machine"), e_machine, machine_name, machine)
        )
    if e_type not in (ET_EXEC, ET_DYN):
        raise Bad("bootstrap is not an executable (ELF type %d)" % e_type)

    interp = None
    try:
        for i in range(e_phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
            if p_type == PT_INTERP:
                interp = c_string(data, p_offset)
        sections = [
            struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)
        ]
    except struct.error:
        raise Bad("corrupt ELF: headers out of bounds")
    if interp is None:
        raise Bad("bootstrap has no program interpreter: a shared library or a static binary, not a glibc executable")
    if interp != interpreter:
        raise Bad("bootstrap's program interpreter is %s, expected %s" % (interp, interpreter))
    if not sections:
        raise Bad("bootstrap has no section headers")

    try:
        return read_sections(data, sections, e_shstrndx)
    except (struct.error, IndexError):
        raise Bad("corrupt ELF: sections out of bounds")


def read_sections(data, sections, e_shstrndx):
    names_offset = sections[e_shstrndx][4]
    stripped = True
    needed, glibc = [], set()
    for name, sh_type, _, _, offset, size, link, info, _, _ in sections:
        section_name = c_string(data, names_offset + name)
        if sh_type == SHT_SYMTAB or section_name.startswith(".debug_"):
            stripped = False
        strings = sections[link][4] if link < len(sections) else 0
        if sh_type == SHT_DYNAMIC:
            for entry in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, entry)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    needed.append(c_string(data, strings + value))
        elif sh_type == SHT_GNU_VERNEED:
            need = offset
            for _ in range(info):  # sh_info: the number of Verneed entries
                _, count, _, aux, next_need = struct.unpack_from("<HHIII", data, need)
                entry = need + aux
                for _ in range(count):
                    _, _, _, version, next_aux = struct.unpack_from("<IHHII", data, entry)
                    glibc.add(c_string(data, strings + version))
                    entry += next_aux
                need += next_need
    return needed, sorted(v for v in glibc if v.startswith("GLIBC_")), stripped


def glibc_key(version):
    match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", version)
    if not match:
        raise Bad("bootstrap requires %s, a glibc-internal version no other glibc provides" % version)
    return tuple(int(part) for part in match.group(1).split("."))


def check_package(path, arch, max_glibc):
    machine, machine_name, interpreter = ARCHES[arch][:3]
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise Bad("cannot open it as a zip: %s" % e)
    with archive:
        names = archive.namelist()
        if "bootstrap" not in names:
            raise Bad("no `bootstrap` at the root of the zip (it holds: %s)" % (", ".join(names) or "nothing"))
        info = archive.getinfo("bootstrap")
        mode = info.external_attr >> 16
        if info.create_system != 3 or not mode & 0o111:
            raise Bad("bootstrap is not marked executable in the zip (mode %o)" % mode)
        data = archive.read("bootstrap")
    needed, glibc, stripped = read_elf(data, machine, machine_name, interpreter)
    foreign = [library for library in needed if library not in ALLOWED_LIBRARIES]
    if foreign:
        raise Bad("bootstrap needs %s, which the Lambda runtime does not provide" % ", ".join(foreign))
    if not glibc:
        raise Bad("bootstrap requires no GLIBC_ symbol version: not a glibc build")
    highest = max(glibc, key=glibc_key)
    if glibc_key(highest) > max_glibc:
        newer = [v for v in glibc if glibc_key(v) > max_glibc]
        raise Bad(
            "bootstrap requires %s, newer than the GLIBC_%s of Lambda's provided.al2023 runtime"
            % (", ".join(sorted(newer, key=glibc_key)), ".".join(map(str, max_glibc)))
        )
    if not stripped:
        raise Bad("bootstrap is not stripped (it has a symbol table or debug info)")
    print(
        "%s: %.1f MB zipped, %.1f MB bootstrap, %s, %s, stripped"
        % (os.path.basename(path), os.path.getsize(path) / 1e6, len(data) / 1e6, highest, machine_name)
    )
    return data


def emulator(arch):
    """The command prefix that runs a binary of `arch` here, or None with the reason."""
    _, machine_name, interpreter, qemu, sysroot = ARCHES[arch]
    debian = DEBIAN_ARCHES[machine_name]
    if platform.machine() in (machine_name, debian):
        return [], None
    if not shutil.which(qemu):
        return None, "%s not found (Debian: apt-get install qemu-user libc6-%s-cross)" % (qemu, debian)
    if not os.path.isfile(os.path.join(sysroot, "lib", os.path.basename(interpreter))):
        return None, "no %s glibc in %s (Debian: apt-get install libc6-%s-cross)" % (machine_name, sysroot, debian)
    return [qemu, "-L", sysroot], None


def smoke(name, data, prefix):
    """Starts the binary with an empty environment: it must stop at its configuration check."""
    with tempfile.TemporaryDirectory() as directory:
        binary = os.path.join(directory, "bootstrap")
        with open(binary, "wb") as f:
            f.write(data)
        os.chmod(binary, 0o755)
        try:
            run = subprocess.run(
                prefix + [binary], env={}, cwd=directory, stdin=subprocess.DEVNULL,
                capture_output=True, timeout=SMOKE_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            raise Bad("smoke run: still running after %d s with an empty environment" % SMOKE_TIMEOUT_SECONDS)
    output = run.stdout.decode("utf-8", "replace").strip()
    errors = run.stderr.decode("utf-8", "replace").strip()
    try:
        line = json.loads(output.splitlines()[0]) if output else None
    except ValueError:
        line = None
    if run.returncode != 1 or not isinstance(line, dict) or line.get("level") != "ERROR":
        raise Bad(
            "smoke run: expected a JSON configuration error and exit status 1, got status %d\nstdout: %s\nstderr: %s"
            % (run.returncode, output[:2000], errors[:2000])
        )
    print("%s: smoke run stopped at its configuration check: %s" % (name, line.get("message")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zips", nargs="+", help="deployment packages to check")
    parser.add_argument("--arch", choices=sorted(ARCHES), default="arm64")
    parser.add_argument("--require-smoke", action="store_true", help="fail when no emulator can run the binaries")
    args = parser.parse_args()

    failed = 0
    binaries = []
    for path in args.zips:
        try:
            binaries.append((os.path.basename(path), check_package(path, args.arch, MAX_GLIBC)))
        except Bad as e:
            print("%s: FAILED: %s" % (path, e), file=sys.stderr)
            failed += 1
    if binaries:
        prefix, why_not = emulator(args.arch)
        if prefix is None:
            print("SMOKE RUN SKIPPED: %s" % why_not, file=sys.stderr)
            if args.require_smoke:
                failed += 1
        else:
            for name, data in binaries:
                try:
                    smoke(name, data, prefix)
                except Bad as e:
                    print("%s: FAILED: %s" % (name, e), file=sys.stderr)
                    failed += 1
    if failed:
        print("Lambda package check FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
