# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""LXC images from an image server (the protocol of LXC's ``download`` template), verified and cached.

The cache is the download template's own layout, so that ``lxc-create -t download`` and this code
share it: ``<cache_dir>/download/<dist>/<release>/<arch>/<variant>/`` holds ``rootfs.tar.xz``, the
files of ``meta.tar.xz`` unpacked (``config``, ``config-user``, ``excludes-user``, ``templates``,
``expiry``, ``create-message`` ...) and ``build_id``. This code adds ``.lxcfleet-image.json``
(server, how the entry was verified, checksums), which the template ignores.

Server protocol: ``<server>/meta/1.0/index-system`` (``index-user`` for unprivileged containers),
tried first with the compat suffix ``.7`` as LXC 5 does; each line is
``dist;release;arch;variant;build_id;path`` and the build's files are ``<server><path>/<file>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import LockTimeout, fcntl_lock
from ansible_collections.lxcfleet.lxc.plugins.module_utils import _unpack
from ansible_collections.lxcfleet.lxc.plugins.module_utils._image_options import DEFAULT_SERVER, IMAGE_OPTIONS  # re-exported

COMPAT_LEVEL = 7
USER_AGENT = "lxcfleet.lxc compat:%d" % COMPAT_LEVEL
INFO_FILE = ".lxcfleet-image.json"
ROOTFS = "rootfs.tar.xz"
META = "meta.tar.xz"
SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
# Names in the cache folder that meta.tar.xz may not provide (they are written by this code or the template).
RESERVED_NAMES = frozenset([ROOTFS, META, "build_id", INFO_FILE])
KNOWN_META = ("config", "config-user", "excludes-user", "templates", "expiry", "create-message", "fstab")
MAX_SMALL = 16 * 1024 * 1024      # index, SHA256SUMS, signature, one meta member
MAX_META_MEMBERS = 256
MAX_REDIRECTS = 5
LOCK_TIMEOUT = 1800.0
BACKOFF = 1.0                     # first retry delay in seconds, doubled each time (unit tests lower it)
BACKOFF_MAX = 30.0
CHUNK = 1024 * 1024

# An index field or an option naming a path component: starts with a letter or digit (so never "." or
# ".." or an option-like "-x"), then letters, digits and . _ : + ~ @ - only; no "/" and no whitespace.
_FIELD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+~@-]{0,127}\Z")
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.:+~@-]{0,127}"
_PATH_RE = re.compile(r"^(/%s)+/?$" % _SEGMENT)
_META_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")
_HEX_RE = re.compile(r"^[0-9a-f]{64}\Z")
_FPR_RE = re.compile(r"^([0-9A-F]{40}|[0-9A-F]{64})\Z")

# Linux machine names (uname -m) to the architecture names of the image servers (Debian's names).
_ARCH_MAP = {
    "x86_64": "amd64", "amd64": "amd64",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
    "aarch64": "arm64", "arm64": "arm64", "armv8l": "armhf",
    "armv7l": "armhf", "armv7b": "armhf", "armv6l": "armel", "armv5tel": "armel", "armv5tejl": "armel",
    "ppc64le": "ppc64el", "ppc64": "powerpc64", "ppc": "powerpc",
    "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loongarch64",
    "mips64": "mips64el", "mips": "mipsel",
}


class ImageError(Exception):
    """Bad input, a missing image, a failed verification or download; the message names the option or cause."""


class ImageNetworkError(ImageError):
    """The server could not be reached or answered 5xx / a truncated body (retried before this is raised)."""


class ImageHTTPError(ImageError):
    """The server answered with a 4xx status (not retried)."""

    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


class ImageVerifyError(ImageError):
    """A checksum, the signature or the content of an archive is not acceptable (not retried)."""


# --- parameters ----------------------------------------------------------------------------------

def host_arch(machine=None) -> str:
    """The host's architecture in the naming of LXC's image servers (amd64, i386, arm64, armhf ...)."""
    machine = machine or platform.machine()
    return _ARCH_MAP.get(machine, machine)


def default_cache_dir() -> str:
    """LXC_CACHE_BASE of the download template: /var/cache/lxc for root, ~/.cache/lxc for others."""
    if os.geteuid() == 0:
        return "/var/cache/lxc"
    return os.path.join(os.path.expanduser("~"), ".cache", "lxc")


def check_field(option: str, value) -> str:
    if value is None or value == "":
        raise ImageError("%s is required" % option)
    value = str(value)
    if not _FIELD_RE.match(value) or ".." in value:
        raise ImageError("%s: %r is not a valid name (letters, digits and . _ : + ~ @ - only, starting with a letter or "
                         "digit, at most 128 characters)" % (option, value))
    return value


def normalize_server(server, allow_http: bool) -> str:
    """``https://host[:port][/prefix]`` without a trailing slash; a bare host name means https (as LXC)."""
    server = (server or DEFAULT_SERVER).strip()
    if "://" not in server:
        server = "https://" + server
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("http", "https"):
        raise ImageError("server: %r: only https:// (or http:// with allow_http) servers are supported" % server)
    if parts.scheme == "http" and not allow_http:
        raise ImageError("server: %s is plain http, which can be read and changed on the way; use https:// or set "
                         "allow_http: true" % server)
    if not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise ImageError("server: %r is not a plain server URL (scheme://host[:port][/path], no user, query or fragment)" % server)
    try:
        parts.port  # pylint: disable=pointless-statement
    except ValueError:
        raise ImageError("server: %r has an invalid port" % server) from None
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def normalize_fingerprint(value):
    if value is None or value == "":
        return None
    fpr = value.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not _FPR_RE.match(fpr):
        raise ImageError("fingerprint: %r is not a full OpenPGP fingerprint (40 or 64 hex digits)" % value)
    return fpr


def validate_params(params: dict, need_image: bool = True) -> dict:
    """Checked and completed copy of the IMAGE_OPTIONS values; raises ImageError naming the option."""
    p = dict((key, params.get(key, spec.get("default"))) for key, spec in IMAGE_OPTIONS.items())
    for key in ("allow_http", "validate_certs", "use_expired_offline"):
        p[key] = bool(p[key]) if p[key] is not None else IMAGE_OPTIONS[key]["default"]
    for key in ("timeout", "retries"):
        if p[key] is None:
            p[key] = IMAGE_OPTIONS[key]["default"]
    if p["refresh"] is None:
        p["refresh"] = "expired"
    if p["refresh"] not in IMAGE_OPTIONS["refresh"]["choices"]:
        raise ImageError("refresh: %r is not one of never, expired" % p["refresh"])
    if need_image:
        p["dist"] = check_field("dist", p["dist"])
        p["release"] = check_field("release", p["release"])
        p["arch"] = check_field("arch", p["arch"] or host_arch())
        p["variant"] = check_field("variant", p["variant"] or "default")
    else:
        for key in ("dist", "release", "arch", "variant"):
            p[key] = params.get(key)  # filters: only those given (no default variant)
            if p[key]:
                p[key] = check_field(key, p[key])
    p["server"] = normalize_server(p["server"], p["allow_http"])
    p["fingerprint"] = normalize_fingerprint(p["fingerprint"])
    if p["keyring"]:
        p["keyring"] = os.path.abspath(p["keyring"])
        if not os.path.isfile(p["keyring"]):
            raise ImageError("keyring: %s is not a file" % p["keyring"])
    if p["ca_path"] and not os.path.exists(p["ca_path"]):
        raise ImageError("ca_path: %s does not exist" % p["ca_path"])
    if p["timeout"] <= 0:
        raise ImageError("timeout: must be a positive number of seconds")
    if p["retries"] < 0:
        raise ImageError("retries: must be 0 or more")
    p["cache_dir"] = os.path.abspath(p["cache_dir"] or default_cache_dir())
    return p


def cache_path(params: dict, unprivileged: bool = False) -> str:
    """The cache folder of the image: ``<cache_dir>/download/<dist>/<release>/<arch>/<variant>``.

    The same folder for privileged and unprivileged use (as the download template); ``unprivileged``
    only changes which files of it apply (``config-user``) and which index is read.
    """
    del unprivileged  # the layout is the same; kept in the signature for callers that know it
    p = params if params.get("_validated") else validate_params(params)
    return os.path.join(p["cache_dir"], "download", p["dist"], p["release"], p["arch"], p["variant"])


# --- index -----------------------------------------------------------------------------------------

def parse_index(text: str):
    """(entries, rejected): entries are dicts of the valid lines in order; rejected is [(line_no, reason)].

    A line is ``dist;release;arch;variant;build_id;path``. A line with a field that could leave the
    cache folder or the server path (``/``, ``..``, empty, odd characters) is rejected; the others stay usable.
    """
    entries, rejected = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(";")
        if len(fields) != 6:
            rejected.append((number, "%d fields instead of 6" % len(fields)))
            continue
        names = ("dist", "release", "arch", "variant", "build_id")
        bad = [name for name, value in zip(names, fields) if not _FIELD_RE.match(value) or ".." in value]
        if bad:
            rejected.append((number, "invalid %s" % ", ".join(bad)))
            continue
        if not _PATH_RE.match(fields[5]) or ".." in fields[5]:
            rejected.append((number, "invalid path"))
            continue
        entries.append(dict(zip(names + ("path",), fields)))
    return entries, rejected


def rejected_warning(rejected, url) -> str:
    shown = "; ".join("line %d: %s" % item for item in rejected[:5])
    more = " and %d more" % (len(rejected) - 5) if len(rejected) > 5 else ""
    return "%s: %d index line(s) ignored (%s%s)" % (url, len(rejected), shown, more)


def find_entry(entries, p):
    """The first entry for dist/release/arch/variant (the download template takes the first too)."""
    for entry in entries:
        if (entry["dist"], entry["release"], entry["arch"], entry["variant"]) == (p["dist"], p["release"], p["arch"], p["variant"]):
            return entry
    return None


def filter_entries(entries, p):
    keys = [key for key in ("dist", "release", "arch", "variant") if p.get(key)]
    return [entry for entry in entries if all(entry[key] == p[key] for key in keys)]


# --- HTTP --------------------------------------------------------------------------------------

def check_redirect(old_url: str, new_url: str, allow_http: bool) -> None:
    old, new = urllib.parse.urlsplit(old_url), urllib.parse.urlsplit(new_url)
    if new.scheme not in ("http", "https"):
        raise ImageError("server: redirect from %s to %s refused (not http or https)" % (old_url, new_url))
    if old.scheme == "https" and new.scheme == "http":
        raise ImageError("server: redirect from %s to %s refused: a redirect never downgrades https to http" % (old_url, new_url))
    if new.scheme == "http" and not allow_http:
        raise ImageError("server: redirect to %s refused: plain http needs allow_http: true" % new_url)


def _open_once(url: str, p: dict):
    """Response of one GET, following redirects by hand (checked by check_redirect)."""
    # Imported here: a run that finds a valid cache entry makes no request and need not load them.
    import http.client  # pylint: disable=import-outside-toplevel
    import socket  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    import urllib.error  # pylint: disable=import-outside-toplevel

    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    for _hop in range(MAX_REDIRECTS + 1):
        try:
            return open_url(url, method="GET", timeout=p["timeout"], validate_certs=p["validate_certs"], ca_path=p["ca_path"],
                            http_agent=USER_AGENT, follow_redirects="none", use_netrc=False)
        except urllib.error.HTTPError as exc:
            code = exc.code
            location = exc.headers.get("Location") if exc.headers else None
            exc.close()
            if code in (301, 302, 303, 307, 308):
                if not location:
                    raise ImageHTTPError("%s: HTTP %d without Location" % (url, code), code) from None
                new_url = urllib.parse.urljoin(url, location)
                check_redirect(url, new_url, p["allow_http"])
                url = new_url
                continue
            if code >= 500:
                raise ImageNetworkError("%s: HTTP %d %s" % (url, code, exc.reason)) from None
            raise ImageHTTPError("%s: HTTP %d %s" % (url, code, exc.reason), code) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
                raise ImageError("%s: TLS certificate not trusted (%s); give the server's CA in ca_path" % (url, reason)) from None
            raise ImageNetworkError("%s: %s" % (url, reason)) from None
        except (socket.timeout, TimeoutError) as exc:
            raise ImageNetworkError("%s: timed out (%s)" % (url, exc)) from None
        except ssl.SSLError as exc:
            raise ImageError("%s: TLS error (%s)" % (url, exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ImageNetworkError("%s: %s" % (url, exc)) from None
    raise ImageError("%s: more than %d redirects" % (url, MAX_REDIRECTS))


def _get_once(url: str, p: dict, dest, limit):
    """Stream one GET into ``dest`` (a binary file object); returns (bytes, sha256 hex)."""
    import http.client  # pylint: disable=import-outside-toplevel

    resp = _open_once(url, p)
    digest = hashlib.sha256()
    total = 0
    try:
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if limit is not None and expected is not None and expected > limit:
            raise ImageVerifyError("%s: %d bytes is more than the limit of %d" % (url, expected, limit))
        while True:
            try:
                chunk = resp.read(CHUNK)
            except http.client.IncompleteRead as exc:
                raise ImageNetworkError("%s: truncated download (%d of %s bytes): %s" % (url, total + len(exc.partial), expected, exc)) from None
            except (OSError, http.client.HTTPException) as exc:
                raise ImageNetworkError("%s: download interrupted after %d bytes: %s" % (url, total, exc)) from None
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:
                raise ImageVerifyError("%s: more than the limit of %d bytes" % (url, limit))
            digest.update(chunk)
            dest.write(chunk)
        if expected is not None and total != expected:
            raise ImageNetworkError("%s: truncated download (%d of %d bytes)" % (url, total, expected))
    finally:
        resp.close()
    return total, digest.hexdigest()


def _retrying(p: dict, action, sleep=None):
    """Run ``action`` with retries and exponential backoff on ImageNetworkError only."""
    sleep = sleep or time.sleep
    attempt = 0
    while True:
        try:
            return action()
        except ImageNetworkError as exc:
            if attempt >= p["retries"]:
                if p["retries"]:
                    raise ImageNetworkError("%s (after %d retries)" % (exc, p["retries"])) from None
                raise
            sleep(min(BACKOFF * (2 ** attempt), BACKOFF_MAX))
            attempt += 1


def download(url: str, p: dict, path: str, limit=None):
    """GET ``url`` into the new file ``path`` (truncated and rewritten on each retry); returns (bytes, sha256)."""
    def action():
        with open(path, "wb") as handle:
            return _get_once(url, p, handle, limit)
    return _retrying(p, action)


def fetch_small(url: str, p: dict) -> bytes:
    class Buffer:
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(data)

    def action():
        buf = Buffer()
        _get_once(url, p, buf, MAX_SMALL)
        return b"".join(buf.parts)
    return _retrying(p, action)


def build_url(server: str, path: str, name: str = "") -> str:
    return server + urllib.parse.quote(path.rstrip("/") + "/" + name if name else path, safe="/:~+@")


def fetch_index(p: dict, unprivileged: bool):
    """(entries, rejected, url) of the server's index; ``index-<mode>.7`` first, then ``index-<mode>``."""
    base = "/meta/1.0/index-%s" % ("user" if unprivileged else "system")
    url = build_url(p["server"], "%s.%d" % (base, COMPAT_LEVEL))
    try:
        data = fetch_small(url, p)
    except ImageHTTPError:
        url = build_url(p["server"], base)
        data = fetch_small(url, p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImageVerifyError("%s: the index is not UTF-8 text" % url) from None
    entries, rejected = parse_index(text)
    return entries, rejected, url


# --- verification ---------------------------------------------------------------------------------

def parse_sums(text: str) -> dict:
    """File name to sha256 hex of a SHA256SUMS file (``<hex>  <name>`` or ``<hex> *<name>``)."""
    sums = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts[0].lower(), parts[1].lstrip("*").strip()
        if _HEX_RE.match(digest):
            sums[os.path.basename(name)] = digest
    return sums


def gpg_verify(sums_path: str, sig_path: str, keyring, fingerprint, runner=None) -> str:
    """``gpgv`` on SHA256SUMS; returns the fingerprint of the key that signed it, or raises ImageVerifyError.

    With ``keyring``, only that keyring is used; without it, gpgv's default keyring
    (``trustedkeys.kbx`` of GnuPG's home). With ``fingerprint``, the signing key (or its primary
    key) must have it, as the VALIDSIG status line says.
    """
    argv = ["gpgv", "--status-fd", "1"]
    if keyring:
        argv += ["--keyring", keyring]
    argv += [sig_path, sums_path]
    runner = runner or _run
    try:
        rc, out, err = runner(argv)
    except FileNotFoundError:
        raise ImageVerifyError("keyring/fingerprint given but gpgv is not installed (Debian package gpgv)") from None
    valid, good = [], False
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "[GNUPG:]":
            if words[1] == "GOODSIG":
                good = True
            elif words[1] == "VALIDSIG":
                valid.append(words[2].upper())
                if len(words) >= 12:
                    valid.append(words[11].upper())
    if rc != 0 or not good or not valid:
        detail = (err.strip() or out.strip()).splitlines()
        raise ImageVerifyError("%s: bad or untrusted signature (gpgv rc=%s: %s)" % (SIGNATURE, rc, " / ".join(detail[-3:])))
    if fingerprint and fingerprint not in valid:
        raise ImageVerifyError("fingerprint: %s was signed by key %s, not by %s" % (SIGNATURE, valid[0], fingerprint))
    return fingerprint or valid[-1]


def _run(argv):
    env = dict(os.environ, LC_ALL="C", LANG="C")
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") if name not in ("", ".") else ""


# Device nodes a root file system may carry (LXC creates /dev itself; unprivileged containers skip them
# through excludes-user): the harmless ones of /dev only. Anything else (mem, kmem, port, disks) is refused.
SAFE_DEVICES = {
    "dev/null": (1, 3), "dev/zero": (1, 5), "dev/full": (1, 7), "dev/random": (1, 8), "dev/urandom": (1, 9),
    "dev/tty": (5, 0), "dev/console": (5, 1), "dev/ptmx": (5, 2),
}


def check_rootfs(path: str) -> dict:
    """Reads every member of rootfs.tar.xz with the collection's safe-unpack check (``_unpack``: names
    and hard links that leave the tree, members written through a symbolic link of the archive, a
    truncated stream), then refuses block devices and character devices other than the harmless
    ones of SAFE_DEVICES. Symbolic links themselves are normal in a root file system. Returns the
    check's summary, which the cache keeps next to the archive for the container module."""
    try:
        summary = _unpack.check_archive(path)
    except _unpack.UnpackError as exc:
        raise ImageVerifyError("%s: %s" % (ROOTFS, exc)) from None
    if not summary["members"]:
        raise ImageVerifyError("%s: empty archive" % ROOTFS)
    for name, (kind, major, minor) in sorted(summary["device_ids"].items()):
        if kind != "c" or SAFE_DEVICES.get(name) != (major, minor):
            raise ImageVerifyError("%s: device node %r (%d:%d) is not one of the harmless ones of /dev" % (
                ROOTFS, name, major, minor))
    return summary


def _check_meta_content(name: str, data: bytes) -> None:
    """``templates`` lines are paths the template edits in the rootfs; ``excludes-user`` lines become tar arguments."""
    base = name.split(".")[0]
    if base not in ("templates", "excludes-user", "excludes"):
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImageVerifyError("%s: %s is not UTF-8 text" % (META, name)) from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if any(ord(char) < 32 or ord(char) == 127 for char in line):
            raise ImageVerifyError("%s: %s line %d has control characters" % (META, name, number))
        if ".." in line.split("/"):
            raise ImageVerifyError("%s: %s line %d (%r) leaves the root file system" % (META, name, number, line))
        if base != "templates" and (any(char.isspace() for char in line) or line.startswith("-")):
            # The template passes each line to tar as --exclude=LINE unquoted: a space would add arguments.
            raise ImageVerifyError("%s: %s line %d (%r) would pass extra arguments to tar" % (META, name, number, line))


def unpack_meta(meta_path: str, dest: str) -> list:
    """Writes the plain files of meta.tar.xz into ``dest``; anything else (folders other than ``.``, links,
    devices, paths with ``/``) is refused. Returns the names written."""
    names = []
    try:
        with tarfile.open(meta_path, "r:xz") as tar:
            members = tar.getmembers()
            if len(members) > MAX_META_MEMBERS:
                raise ImageVerifyError("%s: %d members, more than %d" % (META, len(members), MAX_META_MEMBERS))
            plan = []
            for member in members:
                name = _member_name(member.name)
                if not name and member.isdir():
                    continue
                if not member.isfile():
                    kind = ("symbolic link" if member.issym() else "hard link" if member.islnk() else "folder" if member.isdir()
                            else "device" if member.ischr() or member.isblk() else "fifo" if member.isfifo() else "special file")
                    raise ImageVerifyError("%s: member %r is a %s; only plain files are allowed" % (META, member.name, kind))
                if "/" in name or not _META_NAME_RE.match(name):
                    raise ImageVerifyError("%s: member %r is not a plain file name of the top folder" % (META, member.name))
                if name in RESERVED_NAMES:
                    raise ImageVerifyError("%s: member %r would replace a file of the cache" % (META, member.name))
                if name in names:
                    raise ImageVerifyError("%s: member %r appears twice" % (META, member.name))
                if member.size > MAX_SMALL:
                    raise ImageVerifyError("%s: member %r is larger than %d bytes" % (META, member.name, MAX_SMALL))
                names.append(name)
                plan.append((name, member))
            if "config" not in names:
                raise ImageVerifyError("%s: no config file" % META)
            for name, member in plan:
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                _check_meta_content(name, data)
                fd = os.open(os.path.join(dest, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.chmod(os.path.join(dest, name), 0o644)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageVerifyError("%s: not a valid tar.xz archive (%s)" % (META, exc)) from None
    return names


# --- cache ---------------------------------------------------------------------------------------

def relevant_file(folder: str, name: str, unprivileged: bool):
    """The template's relevant_file(): ``name-user`` in user mode when present, then a ``.7`` compat variant."""
    path = os.path.join(folder, name)
    if unprivileged and os.path.exists(path + "-user"):
        path += "-user"
    elif not unprivileged and os.path.exists(path + "-system"):
        path += "-system"
    if os.path.exists("%s.%d" % (path, COMPAT_LEVEL)):
        path = "%s.%d" % (path, COMPAT_LEVEL)
    return path


def read_entry(folder: str, unprivileged: bool):
    """What the cache folder holds, or None when it is missing or incomplete (no rootfs, config or build_id)."""
    if not os.path.isdir(folder):
        return None
    rootfs = os.path.join(folder, ROOTFS)
    config = relevant_file(folder, "config", unprivileged)
    build_file = os.path.join(folder, "build_id")
    if not (os.path.isfile(rootfs) and os.path.isfile(config) and os.path.isfile(build_file)):
        return {"complete": False}
    with open(build_file, encoding="utf-8", errors="replace") as handle:
        build_id = handle.read().strip()
    expiry = None
    expiry_file = relevant_file(folder, "expiry", unprivileged)
    if os.path.isfile(expiry_file):
        with open(expiry_file, encoding="utf-8", errors="replace") as handle:
            raw = handle.read().strip()
        # The template compares with "-lt"; a value that is not a number counts as expired here.
        expiry = int(raw) if re.match(r"^-?[0-9]+$", raw) else 0
    info = {}
    try:
        with open(os.path.join(folder, INFO_FILE), encoding="utf-8") as handle:
            info = json.load(handle)
        if not isinstance(info, dict) or info.get("build_id") != build_id:
            info = {}  # written for another build (the template replaced the files since)
    except (OSError, ValueError):
        info = {}
    meta = dict((name, None) for name in KNOWN_META)
    for name in sorted(os.listdir(folder)):
        if name in RESERVED_NAMES or name.startswith(".") or not os.path.isfile(os.path.join(folder, name)):
            continue
        meta[name] = os.path.join(folder, name)
    meta["config"] = config
    return {"complete": True, "build_id": build_id, "expiry": expiry, "rootfs": rootfs, "meta": meta, "info": info}


def _exchange(src: str, dst: str) -> bool:
    """renameat2(RENAME_EXCHANGE); False when the kernel, libc or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if func(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def swap_in(new: str, final: str, exchange=_exchange) -> None:
    """Put the folder ``new`` in place of ``final`` atomically, then remove the old one."""
    if not os.path.lexists(final):
        os.rename(new, final)
        return
    if exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)  # holds the previous entry now
        return
    old = tempfile.mkdtemp(prefix=os.path.basename(final) + ".old-", dir=os.path.dirname(final))
    os.rmdir(old)
    os.rename(final, old)
    try:
        os.rename(new, final)
    except OSError:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_entry(final: str) -> None:
    """Remove the cache folder: renamed away first (it disappears at once), then deleted."""
    old = tempfile.mkdtemp(prefix=os.path.basename(final) + ".old-", dir=os.path.dirname(final))
    os.rmdir(old)
    os.rename(final, old)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def entry_lock(folder: str):
    parent = os.path.dirname(folder)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    with fcntl_lock(os.path.join(parent, ".%s.lxcfleet-lock" % os.path.basename(folder)), timeout=LOCK_TIMEOUT, mode=0o644):
        yield


def fetch_build(p: dict, entry: dict, folder: str, unprivileged: bool, warn=None) -> dict:
    """Download, verify and swap one build into ``folder``; the previous entry stays as it was on any failure."""
    parent = os.path.dirname(folder)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    os.makedirs(p["cache_dir"], mode=0o755, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".lxcfleet-download-", dir=p["cache_dir"])
    new = None
    try:
        url = {name: build_url(p["server"], entry["path"], name) for name in (SUMS, SIGNATURE, ROOTFS, META)}
        paths = {name: os.path.join(tmp, name) for name in url}
        download(url[SUMS], p, paths[SUMS], MAX_SMALL)
        verified, signer = "sha256", None
        if p["keyring"] or p["fingerprint"]:
            download(url[SIGNATURE], p, paths[SIGNATURE], MAX_SMALL)
            signer = gpg_verify(paths[SUMS], paths[SIGNATURE], p["keyring"], p["fingerprint"])
            verified = "gpg"
        with open(paths[SUMS], encoding="utf-8", errors="replace") as handle:
            sums = parse_sums(handle.read())
        for name in (ROOTFS, META):
            if name not in sums:
                raise ImageVerifyError("%s of %s lists no checksum for %s" % (SUMS, url[SUMS], name))
        got = {}
        for name in (META, ROOTFS):
            dummy, got[name] = download(url[name], p, paths[name])
            if got[name] != sums[name]:
                raise ImageVerifyError("%s: sha256 %s does not match %s (%s)" % (url[name], got[name], SUMS, sums[name]))
        checked = check_rootfs(paths[ROOTFS])
        new = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".new-", dir=parent)
        os.chmod(new, 0o755)
        unpack_meta(paths[META], new)
        shutil.move(paths[ROOTFS], os.path.join(new, ROOTFS))  # a rename on the same file system
        os.chmod(os.path.join(new, ROOTFS), 0o644)
        # The check's result, so that a container made from this entry does not read the archive again.
        _unpack.remember(os.path.join(new, ROOTFS), checked)
        _write(os.path.join(new, "build_id"), entry["build_id"] + "\n")
        info = {"server": p["server"], "path": entry["path"], "build_id": entry["build_id"], "verified": verified,
                "signer": signer, "sha256": got, "fetched": int(time.time()), "index": "user" if unprivileged else "system"}
        _write(os.path.join(new, INFO_FILE), json.dumps(info, indent=1, sort_keys=True) + "\n")
        swap_in(new, folder)
        new = None
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if new:
            shutil.rmtree(new, ignore_errors=True)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _describe(p, folder, current, unprivileged, build_id=None, fetched=False, changed=False, expired=False):
    result = {"path": folder, "build_id": build_id, "expiry": None, "fetched": fetched, "changed": changed,
              "rootfs": None, "meta": {}, "verified": None, "server": p["server"], "expired": expired,
              "dist": p["dist"], "release": p["release"], "arch": p["arch"], "variant": p["variant"],
              "index": "user" if unprivileged else "system"}
    if current and current.get("complete"):
        result.update(build_id=build_id or current["build_id"], expiry=current["expiry"], rootfs=current["rootfs"], meta=current["meta"],
                      verified=current["info"].get("verified"), server=current["info"].get("server", p["server"]))
    return result


def _satisfies_key(p, current) -> bool:
    """A pinned key (keyring or fingerprint) is only satisfied by an entry this code verified with gpg (and that key)."""
    if not (p["keyring"] or p["fingerprint"]):
        return True
    info = current["info"]
    if info.get("verified") != "gpg":
        return False
    return not p["fingerprint"] or info.get("signer") == p["fingerprint"]


def ensure_cached(module, params: dict, unprivileged: bool, state: str = "present") -> dict:
    """Make the cache entry of the image match ``state`` (present, latest, absent); see the module docs.

    Returns path, build_id, expiry, fetched, changed, rootfs, meta (file name to path), verified,
    server, expired, before (the build id before), dist/release/arch/variant and warnings.
    Raises ImageError (or a subclass) with a message that names the option or cause.
    """
    p = validate_params(params)
    p["_validated"] = True
    check = bool(getattr(module, "check_mode", False))
    folder = cache_path(p, unprivileged)
    warnings = []
    current = read_entry(folder, unprivileged)
    before = current["build_id"] if current and current.get("complete") else None
    now = int(time.time())

    def done(result):
        result["before"] = before
        result["warnings"] = warnings
        for text in warnings:
            if module is not None and hasattr(module, "warn"):
                module.warn(text)
        return result

    if state == "absent":
        exists = os.path.lexists(folder)
        if exists and not check:
            with entry_lock(folder):
                if os.path.lexists(folder):
                    remove_entry(folder)
        result = _describe(p, folder, None, unprivileged, changed=exists)
        result["build_id"] = None
        return done(result)
    if state not in ("present", "latest"):
        raise ImageError("state: %r is not one of present, latest, absent" % state)

    complete = bool(current and current.get("complete"))
    expired = bool(complete and current["expiry"] is not None and current["expiry"] < now)
    if state == "present" and complete and _satisfies_key(p, current) and (not expired or p["refresh"] == "never"):
        return done(_describe(p, folder, current, unprivileged, expired=expired))

    try:
        entries, rejected, index_url = fetch_index(p, unprivileged)
    except ImageNetworkError as exc:
        if state == "present" and complete and expired and _satisfies_key(p, current):
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(current["expiry"]))
            if p["use_expired_offline"]:
                warnings.append("image cache %s expired since %s, server unreachable (%s): using the expired entry "
                                "(use_expired_offline)" % (folder, since, exc))
                return done(_describe(p, folder, current, unprivileged, expired=True))
            raise ImageNetworkError("image cache %s expired since %s, server unreachable: %s (set use_expired_offline: true to "
                                    "use it anyway, or refresh: never)" % (folder, since, exc)) from None
        raise
    if rejected:
        warnings.append(rejected_warning(rejected, index_url))
    entry = find_entry(entries, p)
    if entry is None:
        hint = " (%d index line(s) were rejected as invalid)" % len(rejected) if rejected else ""
        raise ImageError("no image %s/%s/%s/%s on %s%s" % (p["dist"], p["release"], p["arch"], p["variant"], index_url, hint))
    if complete and current["build_id"] == entry["build_id"] and _satisfies_key(p, current):
        if expired:
            warnings.append("image cache %s has expired, but %s offers no newer build than %s" % (folder, p["server"], entry["build_id"]))
        return done(_describe(p, folder, current, unprivileged, expired=expired))
    if check:
        return done(_describe(p, folder, current, unprivileged, build_id=entry["build_id"], fetched=True, changed=True, expired=expired))
    try:
        with entry_lock(folder):
            # Another run may have fetched it while this one waited for the lock.
            current = read_entry(folder, unprivileged)
            if not (current and current.get("complete") and current["build_id"] == entry["build_id"] and _satisfies_key(p, current)):
                fetch_build(p, entry, folder, unprivileged)
                current = read_entry(folder, unprivileged)
                result = _describe(p, folder, current, unprivileged, fetched=True, changed=True)
            else:
                result = _describe(p, folder, current, unprivileged)
    except LockTimeout as exc:
        raise ImageError("cache_dir: %s" % exc) from None
    result["expired"] = bool(result["expiry"] is not None and result["expiry"] < now)
    return done(result)


def list_images(module, params: dict, unprivileged: bool) -> dict:
    """The server's index entries matching the given dist/release/arch/variant, each with ``cached``."""
    p = validate_params(params, need_image=False)
    del module
    entries, rejected, index_url = fetch_index(p, unprivileged)
    images = []
    for entry in filter_entries(entries, p):
        folder = os.path.join(p["cache_dir"], "download", entry["dist"], entry["release"], entry["arch"], entry["variant"])
        current = read_entry(folder, unprivileged)
        item = dict(entry)
        item["cached_build_id"] = current["build_id"] if current and current.get("complete") else None
        item["cached"] = item["cached_build_id"] == entry["build_id"]
        images.append(item)
    warnings = [rejected_warning(rejected, index_url)] if rejected else []
    return {"images": images, "index": index_url, "warnings": warnings}


# --- the module ------------------------------------------------------------------------------------

def argument_spec() -> dict:
    spec = dict((key, dict(value)) for key, value in IMAGE_OPTIONS.items())
    # Left out: "default" for an image, every variant with list=true (the same for arch).
    spec["variant"] = dict(type="str")
    # No default: "present" when left out; it may not be combined with list=true.
    spec["state"] = dict(type="str", choices=["present", "latest", "absent"])
    spec["list"] = dict(type="bool", default=False)
    spec["unprivileged"] = dict(type="bool", default=True)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    state = params.pop("state")
    listing_wanted = params.pop("list")
    unprivileged = params.pop("unprivileged")
    if listing_wanted and state is not None:
        module.fail_json(msg="list: a listing changes nothing; leave out state (%s) with list: true" % state)
    state = state or "present"
    try:
        if listing_wanted:
            listing = list_images(module, params, unprivileged)
            for text in listing["warnings"]:
                module.warn(text)
            module.exit_json(changed=False, images=listing["images"], index=listing["index"])
        params["variant"] = params["variant"] or "default"
        result = ensure_cached(module, params, unprivileged, state=state)
    except ImageError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cache_dir: %s: %s" % (exc.filename or "", os.strerror(exc.errno) if exc.errno else exc))
    image = dict((key, result[key]) for key in ("dist", "release", "arch", "variant", "build_id", "expiry", "expired", "path", "server",
                                                "verified", "rootfs", "meta", "fetched", "index"))
    if state == "absent":
        image["rootfs"], image["meta"], image["verified"] = None, {}, None
    out = dict(changed=result["changed"], image=image)
    if module._diff:
        out["diff"] = {"before": {"build_id": result["before"]}, "after": {"build_id": image["build_id"]}}
    module.exit_json(**out)
