"""Test image server for lxcfleet.lxc: real images in LXC's download layout, served on 127.0.0.1.

A test fixture, not part of the collection. Standard library only; runs with the venv's Python and
with Debian's /usr/bin/python3. See docs/image-server.md.

    python3 tests/testbed/image_server.py build                     # prints the cache folder
    python3 tests/testbed/image_server.py serve --cache DIR --state FILE --daemon [--tag PREFIX]
    python3 tests/testbed/image_server.py stop --state FILE
    python3 tests/testbed/image_server.py count --log FILE --prefix /meta/

From Python: ``build() -> manifest``, ``serve(cache, state) -> state``, ``stop(state)``,
``count_requests(log, prefix)``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.server
import io
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse

VERSION = "1"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_IMAGE_SH = os.path.join(REPO, "tests", "testbed", "host_image.sh")
DEFAULT_CACHE = os.environ.get("LXCFLEET_TESTBED_CACHE", "/var/cache/lxcfleet-testbed")
BUSYBOX = "/bin/busybox"
ARCH = "amd64"
VARIANT = "default"
ROOTFS = "rootfs.tar.xz"
META = "meta.tar.xz"
SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.asc"
EXPIRY_DAYS = 30

# What each attack image gets wrong; everything else about it is a valid, signed busybox image.
ATTACKS = {
    "evil-badsum": "rootfs.tar.xz does not match the sha256 in SHA256SUMS (a valid busybox tarball with one file more)",
    "evil-badsig": "SHA256SUMS.asc is a valid signature by a different key (other-keyring.gpg), not the test key",
    "evil-truncated": "the server announces the full Content-Length of rootfs.tar.xz, sends half of it and closes the connection",
    "evil-traversal": "rootfs.tar.xz has a member ../x (outside the rootfs)",
    "evil-abslink": "rootfs.tar.xz has a symlink etc/evil -> /etc, then a file etc/evil/pwned written through it",
    "evil-hardlink": "rootfs.tar.xz has hard links etc/shadow-abs -> /etc/shadow and etc/shadow-rel -> ../../etc/shadow",
    "evil-templates": "the templates file of meta.tar.xz lists ../../../etc/passwd",
    "evil-devices": "rootfs.tar.xz has character device nodes (dev/null 1:3, dev/zero 1:5, dev/evil-mem 1:1), not listed in excludes-user",
}


def log(msg: str) -> None:
    print(f"[image_server] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (rc={res.returncode}): {res.stderr.strip()[-2000:]}")
    return res


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- tarballs


class TarWriter:
    """Write a tar.xz with owners 0:0 and one fixed mtime."""

    def __init__(self, path: str, mtime: int) -> None:
        self.tar = tarfile.open(path, "w:xz", format=tarfile.GNU_FORMAT)  # pylint: disable=consider-using-with
        self.mtime = mtime

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = self.mtime
        return info

    def directory(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def hardlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.tar.addfile(info)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666) -> None:
        info = self._info(name, tarfile.CHRTYPE, mode)
        info.devmajor, info.devminor = major, minor
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def busybox_release() -> str:
    out = subprocess.run([BUSYBOX], capture_output=True, text=True, check=False).stdout
    match = re.search(r"BusyBox v(\d+)\.(\d+)", out)
    if not match:
        raise RuntimeError(f"cannot read the version of {BUSYBOX}")
    return f"{match.group(1)}.{match.group(2)}"


def busybox_applets() -> list[str]:
    """Paths of the applets relative to /, as busybox --list-full gives them."""
    res = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=False)
    if res.returncode == 0 and res.stdout.strip():
        return sorted({line.strip() for line in res.stdout.splitlines() if line.strip() and line.strip() != "bin/busybox"})
    res = run([BUSYBOX, "--list"])
    return sorted({"bin/" + line.strip() for line in res.stdout.splitlines() if line.strip() and line.strip() != "busybox"})


BUSYBOX_DIRS = [
    ("bin", 0o755), ("sbin", 0o755), ("dev", 0o755), ("etc", 0o755), ("etc/init.d", 0o755), ("home", 0o755),
    ("lib", 0o755), ("mnt", 0o755), ("proc", 0o555), ("root", 0o700), ("run", 0o755), ("sys", 0o555),
    ("tmp", 0o1777), ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755), ("var", 0o755), ("var/log", 0o755),
    ("var/run", 0o755),
]

BUSYBOX_FILES = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:root\n", 0o644),
    "etc/shadow": ("root:*:19000:0:99999:7:::\n", 0o640),
    "etc/fstab": ("", 0o644),
    "etc/hostname": ("LXC_NAME\n", 0o644),
    "etc/hosts": ("127.0.0.1\tlocalhost\n127.0.1.1\tLXC_NAME\n", 0o644),
    "etc/os-release": ('NAME="BusyBox"\nID=busybox\nPRETTY_NAME="lxcfleet test busybox"\n', 0o644),
    "etc/inittab": (
        "::sysinit:/etc/init.d/rcS\n"
        "tty1::respawn:/bin/getty -L tty1 115200 vt100\n"
        "console::askfirst:/bin/sh\n"
        "::ctrlaltdel:/bin/reboot\n"
        "::shutdown:/bin/umount -a -r\n",
        0o644,
    ),
    "etc/init.d/rcS": ("#!/bin/sh\n/bin/mount -a\n/bin/hostname -F /etc/hostname\n", 0o755),
}


def write_busybox_rootfs(path: str, mtime: int, extra=None) -> None:
    """A busybox rootfs like lxc-busybox makes; ``extra(writer)`` adds members after the good ones."""
    tw = TarWriter(path, mtime)
    tw.directory("./")
    for name, mode in BUSYBOX_DIRS:
        tw.directory(f"./{name}/", mode)
    with open(BUSYBOX, "rb") as fh:
        tw.file("./bin/busybox", fh.read(), 0o755)
    for applet in busybox_applets():
        depth = applet.count("/")
        tw.symlink(f"./{applet}", "../" * depth + "bin/busybox")
    for name, (text, mode) in BUSYBOX_FILES.items():
        tw.file(f"./{name}", text.encode(), mode)
    if extra is not None:
        extra(tw)
    tw.close()


def write_meta(path: str, mtime: int, *, config: str, templates: list[str], excludes_user: list[str], message: str) -> None:
    base = "lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n"
    user = base + "lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n"
    arch = "lxc.arch = linux64\n"
    tw = TarWriter(path, mtime)
    tw.file("config", (base + arch + config).encode())
    tw.file("config-user", (user + arch + config).encode())
    tw.file("excludes-user", "".join(f"{line}\n" for line in excludes_user).encode())
    tw.file("templates", "".join(f"{line}\n" for line in templates).encode())
    tw.file("expiry", f"{mtime + EXPIRY_DAYS * 86400}\n".encode())
    tw.file("create-message", message.encode())
    tw.close()


def device_members(rootfs: str) -> list[str]:
    """Device nodes and fifos in a tarball, as excludes-user lines (the way distrobuilder lists them)."""
    found = []
    with tarfile.open(rootfs, "r|xz") as tar:
        for member in tar:
            if member.ischr() or member.isblk() or member.isfifo():
                found.append(member.name if member.name.startswith("./") else "./" + member.name)
    return sorted(found)


# --------------------------------------------------------------------------- keys and certificates


class Gpg:
    def __init__(self, home: str, uid: str) -> None:
        self.home = home
        os.makedirs(home, mode=0o700, exist_ok=True)
        self._gpg("--quick-generate-key", "--passphrase", "", uid, "ed25519", "sign", "never")
        out = self._gpg("--with-colons", "--list-secret-keys").stdout
        self.fingerprint = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def _gpg(self, *args: str) -> subprocess.CompletedProcess:
        return run(["gpg", "--homedir", self.home, "--batch", "--no-tty", "--pinentry-mode", "loopback", *args])

    def export(self, dest: str) -> None:
        self._gpg("--output", dest, "--export", self.fingerprint)

    def sign(self, path: str, dest: str) -> None:
        self._gpg("--local-user", self.fingerprint, "--armor", "--detach-sign", "--output", dest, path)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, check=False)


def make_certs(dest: str) -> None:
    ca_key, ca_pem = os.path.join(dest, "ca.key"), os.path.join(dest, "ca.pem")
    key, pem, csr = os.path.join(dest, "server.key"), os.path.join(dest, "server.pem"), os.path.join(dest, "server.csr")
    ext = os.path.join(dest, "server.ext")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "3650",
         "-subj", "/CN=lxcfleet test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    with open(ext, "w", encoding="utf-8") as fh:
        fh.write("basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n"
                 "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid,issuer\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial", str(secrets.randbits(63)),
         "-out", pem, "-days", "3650", "-extfile", ext])
    os.unlink(csr)
    os.unlink(ext)


# --------------------------------------------------------------------------- build


def host_image_dir() -> str:
    res = run(["bash", HOST_IMAGE_SH])
    return res.stdout.strip().splitlines()[-1]


def cache_key(host_dir: str) -> str:
    with open(__file__, "rb") as fh:
        me = hashlib.sha256(fh.read()).hexdigest()
    inputs = [VERSION, me, os.path.basename(host_dir.rstrip("/")), sha256_file(BUSYBOX)]
    return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:12]


def _publish(tree: str, final_tree: str, dist: str, release: str, build_id: str, files: dict, signer: Gpg) -> dict:
    """Put rootfs/meta (and optional overrides) in the image folder, write SHA256SUMS and its signature."""
    rel = f"/images/{dist}/{release}/{ARCH}/{VARIANT}/{build_id}/"
    folder = tree + rel
    os.makedirs(folder)
    for name in (ROOTFS, META):
        src = files[name]
        try:
            os.link(src, folder + name)
        except OSError:
            shutil.copyfile(src, folder + name)
    sums_for = files.get("sums_for", {})
    with open(folder + SUMS, "w", encoding="utf-8") as fh:
        for name in (ROOTFS, META):
            fh.write(f"{sums_for.get(name) or sha256_file(folder + name)}  {name}\n")
    signer.sign(folder + SUMS, folder + SIG)
    entry = {"dist": dist, "release": release, "arch": ARCH, "variant": VARIANT, "build_id": build_id, "path": rel,
             "url_path": rel, "files": {}}
    for name in (ROOTFS, META, SUMS, SIG):
        entry["files"][name] = {
            "path": final_tree + rel + name,
            "url_path": rel + name,
            "sha256": sha256_file(folder + name),
            "size": os.path.getsize(folder + name),
        }
    return entry


def _build_into(work: str, final: str, host_dir: str) -> dict:
    now = int(time.time())
    build_id = time.strftime("%Y%m%d_%H%M", time.gmtime(now))
    tree, final_tree = os.path.join(work, "tree"), os.path.join(final, "tree")
    scratch = os.path.join(work, "scratch")
    os.makedirs(os.path.join(tree, "meta", "1.0"))
    os.makedirs(scratch)

    log("test CA and server certificate")
    make_certs(work)
    log("test GPG keys")
    signer = Gpg(os.path.join(work, "gnupg"), "lxcfleet test images <images@lxcfleet.invalid>")
    other = Gpg(os.path.join(work, "gnupg-other"), "lxcfleet other key <other@lxcfleet.invalid>")
    try:
        signer.export(os.path.join(work, "keyring.gpg"))
        other.export(os.path.join(work, "other-keyring.gpg"))
        with open(os.path.join(work, "fingerprint"), "w", encoding="utf-8") as fh:
            fh.write(signer.fingerprint + "\n")

        bb_release = busybox_release()
        bb_config = "lxc.signal.halt = SIGUSR1\nlxc.signal.reboot = SIGTERM\nlxc.tty.max = 1\nlxc.pty.max = 4\n"
        bb_templates = ["/etc/hostname", "/etc/hosts"]

        def s(name: str) -> str:
            return os.path.join(scratch, name)

        log(f"busybox {bb_release} rootfs")
        write_busybox_rootfs(s("busybox.rootfs"), now)
        write_meta(s("busybox.meta"), now, config=bb_config, templates=bb_templates, excludes_user=[],
                   message=f"lxcfleet test image: busybox {bb_release}\n")
        images = {}
        images["busybox"] = _publish(tree, final_tree, "busybox", bb_release, build_id,
                                     {ROOTFS: s("busybox.rootfs"), META: s("busybox.meta")}, signer)

        log(f"debian bookworm from {host_dir}")
        deb_rootfs = os.path.join(host_dir, ROOTFS)
        write_meta(s("debian.meta"), now, config="", templates=["/etc/hostname", "/etc/hosts"],
                   excludes_user=device_members(deb_rootfs), message="lxcfleet test image: Debian bookworm with python3 and systemd\n")
        images["debian"] = _publish(tree, final_tree, "debian", "bookworm", build_id, {ROOTFS: deb_rootfs, META: s("debian.meta")}, signer)

        log("attack images")
        good = {ROOTFS: s("busybox.rootfs"), META: s("busybox.meta")}
        write_busybox_rootfs(s("badsum.rootfs"), now, lambda tw: tw.file("./etc/evil-badsum", b"not the signed tarball\n"))
        images["evil-badsum"] = _publish(tree, final_tree, "evil-badsum", bb_release, build_id,
                                         {ROOTFS: s("badsum.rootfs"), META: good[META],
                                          "sums_for": {ROOTFS: sha256_file(good[ROOTFS])}}, signer)
        images["evil-badsig"] = _publish(tree, final_tree, "evil-badsig", bb_release, build_id, good, other)
        images["evil-truncated"] = _publish(tree, final_tree, "evil-truncated", bb_release, build_id, good, signer)

        def traversal(tw: TarWriter) -> None:
            tw.file("../x", b"written outside the rootfs by evil-traversal\n")

        def abslink(tw: TarWriter) -> None:
            tw.symlink("./etc/evil", "/etc")
            tw.file("./etc/evil/pwned", b"written through an absolute symlink by evil-abslink\n")

        def hardlink(tw: TarWriter) -> None:
            tw.hardlink("./etc/shadow-abs", "/etc/shadow")
            tw.hardlink("./etc/shadow-rel", "../../etc/shadow")

        def devices(tw: TarWriter) -> None:
            tw.chardev("./dev/null", 1, 3)
            tw.chardev("./dev/zero", 1, 5)
            tw.chardev("./dev/evil-mem", 1, 1, 0o600)

        for dist, extra in (("evil-traversal", traversal), ("evil-abslink", abslink), ("evil-hardlink", hardlink),
                            ("evil-devices", devices)):
            write_busybox_rootfs(s(dist + ".rootfs"), now, extra)
            images[dist] = _publish(tree, final_tree, dist, bb_release, build_id, {ROOTFS: s(dist + ".rootfs"), META: good[META]}, signer)
        write_meta(s("templates.meta"), now, config=bb_config, templates=bb_templates + ["../../../etc/passwd"], excludes_user=[],
                   message="lxcfleet test image: evil-templates\n")
        images["evil-templates"] = _publish(tree, final_tree, "evil-templates", bb_release, build_id,
                                            {ROOTFS: good[ROOTFS], META: s("templates.meta")}, signer)
    finally:
        signer.close()
        other.close()
    for dist, entry in images.items():
        entry["defect"] = ATTACKS.get(dist)

    bb_path = images["busybox"]["path"]
    bad_lines = [
        f"evil..;{bb_release};{ARCH};{VARIANT};{build_id};{bb_path}",
        f"evil-release;../../x;{ARCH};{VARIANT};{build_id};{bb_path}",
        f"evil-slash;a/b;{ARCH};{VARIANT};{build_id};{bb_path}",
        f"evil-buildid;{bb_release};{ARCH};{VARIANT};../{build_id};{bb_path}",
        f"evil-path;{bb_release};{ARCH};{VARIANT};{build_id};/images/../../../etc/",
        f"evil-url;{bb_release};{ARCH};{VARIANT};{build_id};http://127.0.0.1:9/images/",
        "evil-fields;too;few;fields",
    ]
    lines = [f"{e['dist']};{e['release']};{e['arch']};{e['variant']};{e['build_id']};{e['path']}" for e in images.values()]
    index = "".join(line + "\n" for line in lines[:1] + bad_lines + lines[1:])
    for mode in ("system", "user"):
        with open(os.path.join(tree, "meta", "1.0", f"index-{mode}"), "w", encoding="utf-8") as fh:
            fh.write(index)
    shutil.rmtree(scratch)
    os.unlink(os.path.join(work, "ca.key"))

    def p(name: str) -> str:
        return os.path.join(final, name)

    manifest = {
        "version": VERSION,
        "cache": final,
        "root": final_tree,
        "build_id": build_id,
        "created": now,
        "ca": p("ca.pem"),
        "server_cert": p("server.pem"),
        "server_key": p("server.key"),
        "keyring": p("keyring.gpg"),
        "fingerprint_file": p("fingerprint"),
        "fingerprint": signer.fingerprint,
        "other_keyring": p("other-keyring.gpg"),
        "other_fingerprint": other.fingerprint,
        "gnupghome": p("gnupg"),
        "host_image": host_dir,
        "index": {"system": "/meta/1.0/index-system", "user": "/meta/1.0/index-user"},
        "index_files": {"system": os.path.join(final_tree, "meta/1.0/index-system"), "user": os.path.join(final_tree, "meta/1.0/index-user")},
        "images": images,
        "bad_index_lines": bad_lines,
        "truncated": [images["evil-truncated"]["files"][ROOTFS]["url_path"]],
        "redirect_prefix": "/redirect-to-http",
    }
    for name in ("ca.pem", "server.pem", "keyring.gpg", "other-keyring.gpg", "fingerprint"):
        manifest.setdefault("sha256", {})[name] = sha256_file(os.path.join(work, name))
    with open(os.path.join(work, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return manifest


def build(cache: str | None = None, host_image: str | None = None) -> dict:
    """Build the image tree once (cached by its inputs) and return its manifest."""
    host_dir = host_image or host_image_dir()
    base = cache or DEFAULT_CACHE
    os.makedirs(base, exist_ok=True)
    final = os.path.join(base, f"images-{cache_key(host_dir)}")
    with open(os.path.join(base, ".images.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = os.path.join(final, "manifest.json")
        if not os.path.isfile(manifest_path):
            work = f"{final}.tmp-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work, mode=0o755)
            started = time.monotonic()
            try:
                _build_into(work, final, host_dir)
                shutil.rmtree(final, ignore_errors=True)
                os.rename(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            log(f"built {final} in {time.monotonic() - started:.1f} s")
        return load_manifest(final)


def load_manifest(cache: str) -> dict:
    with open(os.path.join(cache, "manifest.json"), encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- serve


class RequestLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, scheme: str, method: str, path: str, status: int, sent: int) -> None:
        line = f"{time.time():.3f} {scheme} {method} {path} {status} {sent}\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "lxcfleet-test-images/" + VERSION
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        ctx = self.server.tls  # type: ignore[attr-defined]
        if ctx is not None:
            self.request.settimeout(30)
            self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        pass

    def _done(self, status: int, sent: int) -> None:
        srv = self.server
        srv.request_log.write(srv.scheme, self.command, self.path, status, sent)  # type: ignore[attr-defined]

    def _simple(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._done(status, len(body))

    def do_HEAD(self) -> None:  # pylint: disable=invalid-name
        self.do_GET()

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        srv = self.server
        raw = urllib.parse.urlsplit(self.path).path
        path = urllib.parse.unquote(re.sub("/+", "/", raw))
        if path.startswith("/redirect-to-http/"):
            target = f"http://127.0.0.1:{srv.ports['http']}{path[len('/redirect-to-http'):]}"  # type: ignore[attr-defined]
            self._simple(302, b"", {"Location": target})
            return
        if path.startswith("/redirect/"):
            scheme = srv.scheme  # type: ignore[attr-defined]
            target = f"{scheme}://127.0.0.1:{srv.ports[scheme]}{path[len('/redirect'):]}"  # type: ignore[attr-defined]
            self._simple(302, b"", {"Location": target})
            return
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") or "\0" in part for part in parts):
            self._simple(400, b"bad path\n")
            return
        full = os.path.join(srv.root, *parts)  # type: ignore[attr-defined]
        if not parts or not os.path.isfile(full):
            self._simple(404, b"not found\n")
            return
        size = os.path.getsize(full)
        truncate = "/" + "/".join(parts) in srv.truncated  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if parts[0] == "meta" or full.endswith((SUMS, SIG)) else "application/octet-stream")
        self.send_header("Content-Length", str(size))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            limit = size // 2 if truncate else size
            with open(full, "rb") as fh:
                while sent < limit:
                    chunk = fh.read(min(1 << 16, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
        self._done(200, sent)
        if truncate:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)  # socket.SHUT_RDWR


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, scheme: str, tls, root: str, request_log: RequestLog, truncated: set, ports: dict) -> None:
        self.tls, self.scheme, self.root, self.request_log, self.truncated, self.ports = tls, scheme, root, request_log, truncated, ports
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        log(f"{self.scheme} {client_address}: {type(exc).__name__}: {exc}")


def _serve_foreground(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.cache)
    state_path = os.path.abspath(args.state)
    request_log = RequestLog(os.path.abspath(args.log or os.path.splitext(state_path)[0] + ".requests.log"))
    open(request_log.path, "a", encoding="utf-8").close()  # pylint: disable=consider-using-with
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(manifest["server_cert"], manifest["server_key"])
    ports: dict = {}
    truncated = set(manifest["truncated"])
    http_srv = Server(args.http_port, "http", None, manifest["root"], request_log, truncated, ports)
    https_srv = Server(args.https_port, "https", ctx, manifest["root"], request_log, truncated, ports)
    ports["http"], ports["https"] = http_srv.server_address[1], https_srv.server_address[1]
    state = {
        "pid": os.getpid(),
        "http_port": ports["http"],
        "https_port": ports["https"],
        "http_url": f"http://127.0.0.1:{ports['http']}",
        "https_url": f"https://127.0.0.1:{ports['https']}",
        "root": manifest["root"],
        "cache": manifest["cache"],
        "manifest": os.path.join(manifest["cache"], "manifest.json"),
        "ca": manifest["ca"],
        "keyring": manifest["keyring"],
        "request_log": request_log.path,
        "tag": args.tag,
    }
    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    threads = [threading.Thread(target=srv.serve_forever, daemon=True) for srv in (http_srv, https_srv)]
    for thread in threads:
        thread.start()
    tmp = f"{state_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, state_path)
    log(f"serving {manifest['root']} on {state['http_url']} and {state['https_url']}")
    stop_event.wait()
    for srv in (http_srv, https_srv):
        srv.shutdown()
        srv.server_close()
    return 0


def serve(cache: str, state: str, http_port: int = 0, https_port: int = 0, tag: str | None = None,
          request_log: str | None = None, timeout: float = 20) -> dict:
    """Start the server as a background process; return its state once it listens."""
    state = os.path.abspath(state)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state)
    argv = [sys.executable, os.path.abspath(__file__), "serve", "--cache", cache, "--state", state,
            "--http-port", str(http_port), "--https-port", str(https_port)]
    if tag:
        argv += ["--tag", tag]
    if request_log:
        argv += ["--log", request_log]
    errlog = os.path.splitext(state)[0] + ".server.log"
    with open(errlog, "ab") as err, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=err, stderr=err, start_new_session=True, close_fds=True)  # pylint: disable=consider-using-with
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(state):
            with open(state, encoding="utf-8") as fh:
                return json.load(fh)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    with open(errlog, encoding="utf-8", errors="replace") as fh:
        tail = fh.read()[-2000:]
    raise RuntimeError(f"image server did not start: {tail}")


def _is_ours(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return any(arg.endswith(b"image_server.py") for arg in argv) and b"serve" in argv


def stop(state: str, timeout: float = 10) -> bool:
    """Stop the server of a state file. True if one was running."""
    try:
        with open(state, encoding="utf-8") as fh:
            pid = json.load(fh)["pid"]
    except (OSError, ValueError, KeyError):
        return False
    if not _is_ours(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_ours(pid):
        time.sleep(0.05)
    if _is_ours(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def count_requests(request_log: str, prefix: str = "/", method: str | None = None, scheme: str | None = None,
                   status: int | None = None) -> int:
    """Requests in the log whose path starts with prefix (and method/scheme/status match, if given)."""
    count = 0
    with open(request_log, encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 6:
                continue
            if not fields[3].startswith(prefix):
                continue
            if method and fields[2] != method:
                continue
            if scheme and fields[1] != scheme:
                continue
            if status is not None and fields[4] != str(status):
                continue
            count += 1
    return count


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build the images once (cached); print the cache folder")
    p_build.add_argument("--cache", help=f"parent folder of images-<key> (default {DEFAULT_CACHE})")
    p_build.add_argument("--host-image", help="folder with the Debian rootfs.tar.xz (default: tests/testbed/host_image.sh)")
    p_build.add_argument("--json", action="store_true", help="print the manifest instead of the folder")
    p_serve = sub.add_parser("serve", help="serve a built tree on 127.0.0.1")
    p_serve.add_argument("--cache", help="the images-<key> folder (default: build first)")
    p_serve.add_argument("--state", required=True, help="JSON state file (pid, ports, request log)")
    p_serve.add_argument("--http-port", type=int, default=0)
    p_serve.add_argument("--https-port", type=int, default=0)
    p_serve.add_argument("--log", help="request log (default: <state>.requests.log)")
    p_serve.add_argument("--tag", help="a word to carry in argv (e.g. the test prefix)")
    p_serve.add_argument("--daemon", action="store_true", help="run in the background, return once listening")
    p_stop = sub.add_parser("stop", help="stop the server of a state file")
    p_stop.add_argument("--state", required=True)
    p_count = sub.add_parser("count", help="count logged requests whose path starts with --prefix")
    p_count.add_argument("--log", required=True)
    p_count.add_argument("--prefix", default="/")
    p_count.add_argument("--method")
    p_count.add_argument("--scheme")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        manifest = build(args.cache, args.host_image)
        print(json.dumps(manifest, indent=2, sort_keys=True) if args.json else manifest["cache"])
        return 0
    if args.cmd == "serve":
        if not args.cache:
            args.cache = build()["cache"]
        if args.daemon:
            state = serve(args.cache, args.state, args.http_port, args.https_port, args.tag, args.log)
            print(json.dumps(state, indent=2, sort_keys=True))
            return 0
        return _serve_foreground(args)
    if args.cmd == "stop":
        print("stopped" if stop(args.state) else "not running")
        return 0
    print(count_requests(args.log, args.prefix, args.method, args.scheme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
