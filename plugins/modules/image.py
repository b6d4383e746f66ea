#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Download, verify and cache an LXC image; list a server's images
version_added: 0.1.0
description:
  - Fetches a container image from an LXC image server (the protocol of LXC's C(download) template,
    for example U(https://images.linuxcontainers.org)) into the cache of the C(download) template, so
    that C(lxc-create -t download) and M(lxcfleet.lxc.container) with its C(image) option use it.
  - The cache folder is C(<cache_dir>/download/<dist>/<release>/<arch>/<variant>/) with
    C(rootfs.tar.xz), the files of C(meta.tar.xz) unpacked (C(config), C(config-user), C(expiry),
    C(templates) ...) and C(build_id), exactly as the template writes it; the module adds
    C(.lxcfleet-image.json) (server, verification, checksums), which the template ignores.
  - Reads the server's index C(/meta/1.0/index-user) (or C(index-system) with O(unprivileged=false)),
    first with LXC's compat suffix C(.7), then without; takes the first line for the image, as the template does.
  - Every index field is checked before use (no C(/), no C(..), not empty, letters, digits and
    C(.), C(_), C(:), C(+), C(~), C(@) and C(-) only); a bad line is skipped with a warning and the other lines stay usable.
  - Downloads C(SHA256SUMS) of the build, and with O(keyring) or O(fingerprint) C(SHA256SUMS.asc), which
    C(gpgv) must accept before anything else is used; then C(meta.tar.xz) and C(rootfs.tar.xz), each
    checked against C(SHA256SUMS) (and against C(Content-Length) when the server sends it).
  - Only after the checks, C(meta.tar.xz) is unpacked into a new folder next to the cache folder, with a
    filter that allows plain files of the top folder only (no links, devices, folders or paths), and
    C(rootfs.tar.xz) is checked for member names and hard links that leave the tree. The new folder then
    replaces the cache folder atomically (C(renameat2) with C(RENAME_EXCHANGE), or two renames). A failure
    anywhere leaves the previous cache entry exactly as it was; partial downloads never reach it.
  - Network errors, timeouts, truncated downloads and HTTP 5xx answers are retried with exponential
    backoff (1, 2, 4 ... seconds, at most 30); HTTP 4xx answers and failed checks are not.
  - A valid cache entry is used without any request to the server, so O(state=present) works with no
    network at all.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Check mode downloads nothing and writes nothing. It reads the server's index when a real run would,
        to predict whether a build would be fetched and which.
  diff_mode:
    support: full
    details:
      - The diff shows the C(build_id) of the cache entry before and after.
  idempotent:
    support: full
options:
  state:
    description:
      - V(present) (what the module does when O(state) is left out) makes sure the cache holds the image.
        A valid entry is used as it is, with no request to the server; a missing or incomplete entry is
        fetched; an expired one as O(refresh) says.
      - V(latest) reads the server's index every time and fetches the image when the cache has no entry,
        an expired one, or one of another build than the server offers now.
      - V(absent) removes the cache entry (the folder of the image).
      - Not used with O(list=true), and an error when given with it.
    type: str
    choices: [present, latest, absent]
  list:
    description:
      - Return the images the server offers (RV(images)) instead of managing one; nothing changes.
      - Filtered by those of O(dist), O(release), O(arch) and O(variant) that are given (all
        architectures and variants when O(arch) and O(variant) are left out).
    type: bool
    default: false
  dist:
    description:
      - The distribution, as the server names it (V(debian), V(alpine), V(busybox) ...).
      - Required unless O(list=true).
    type: str
  release:
    description:
      - The release, as the server names it (V(bookworm), V(3.20) ...).
      - Required unless O(list=true).
    type: str
  arch:
    description:
      - The architecture in LXC's naming (V(amd64), V(i386), V(arm64), V(armhf), V(ppc64el), V(s390x) ...).
      - Default is the host's (C(x86_64) is V(amd64), C(aarch64) is V(arm64), C(armv7l) is V(armhf));
        with O(list=true), all architectures.
    type: str
  variant:
    description:
      - The image variant (V(default), V(cloud) ...).
      - V(default) when left out; with O(list=true), all variants.
    type: str
  unprivileged:
    description:
      - Read the server's index for unprivileged containers (C(index-user)) rather than C(index-system),
        as the download template does when it runs in a user namespace.
      - The cache folder is the same; the file C(config-user) of an image applies to unprivileged
        containers, C(config) to privileged ones (RV(image.meta)).
    type: bool
    default: true
  server:
    description:
      - The image server, C(https://host[:port][/path]). A bare host name means C(https://).
      - A C(http://) server is refused unless O(allow_http=true).
    type: str
    default: https://images.linuxcontainers.org
  allow_http:
    description:
      - Allow a plain C(http://) server, and redirects to C(http://) from a C(http://) server.
      - A redirect from C(https://) to C(http://) is always refused.
      - Without a key (O(keyring) or O(fingerprint)), anyone on the way can change a plain http download.
    type: bool
    default: false
  keyring:
    description:
      - An OpenPGP keyring file for C(gpgv --keyring) (binary, as C(gpg --export) writes it, or a keybox).
      - With it, C(SHA256SUMS.asc) must be a good signature of C(SHA256SUMS) by a key of this keyring.
    type: path
  fingerprint:
    description:
      - The full fingerprint (40 or 64 hex digits, spaces allowed) of the key that must have signed C(SHA256SUMS).
      - Checked against the C(VALIDSIG) status of C(gpgv) (the signing subkey or its primary key).
      - Without O(keyring), C(gpgv) uses its default keyring (C(trustedkeys.kbx) of the GnuPG home of the user).
      - A cache entry that was not verified with this key (or with no key) is fetched again.
    type: str
  ca_path:
    description:
      - A PEM file with the CA certificates to trust for the server, for a private image server.
    type: path
  validate_certs:
    description:
      - Check the server's TLS certificate. Only for tests; O(keyring) or O(fingerprint) then still protect the image.
    type: bool
    default: true
  timeout:
    description: Timeout of each connection and read, in seconds.
    type: int
    default: 30
  retries:
    description:
      - How many times a request is retried after a network error, a timeout, a truncated download or a
        HTTP 5xx answer, waiting 1, 2, 4 ... seconds (at most 30) in between.
    type: int
    default: 3
  cache_dir:
    description:
      - The cache base of the download template; the image is in C(<cache_dir>/download/...).
      - Default is C(/var/cache/lxc) for root and C(~/.cache/lxc) for other users, as the template's.
      - The template takes another base from the environment variable C(LXC_CACHE_PATH); give the same here.
    type: path
  refresh:
    description:
      - What O(state=present) does with an expired cache entry (its C(expiry) file is in the past).
      - V(expired) reads the server's index and fetches the image when the server offers another build,
        as C(lxc-create -t download) does.
      - V(never) uses the cached entry even when it has expired, as C(lxc-create -t download -- --force-cache)
        does; the server is only asked when there is no entry.
    type: str
    choices: [never, expired]
    default: expired
  use_expired_offline:
    description:
      - When an expired entry is to be refreshed (O(refresh=expired)) and the server cannot be reached
        (connection error, timeout or HTTP 5xx after the retries), use the expired entry with a warning.
      - By default the task fails then, saying since when the entry has expired and why the server was
        unreachable. Failed checks of a download never fall back.
    type: bool
    default: false
notes:
  - The C(config) of an image is trusted as it is by LXC (it may set hooks that run on the host); only an
    image whose signature is checked (O(keyring) or O(fingerprint)) is known to come from the server's owner.
  - A cache entry written by C(lxc-create -t download) is used as it is (RV(image.verified) is null); with
    O(keyring) or O(fingerprint), it is fetched again and verified.
  - Several runs at the same time for the same image take a lock (C(.<variant>.lxcfleet-lock) next to the
    cache folder); one fetches, the others use its result.
requirements:
  - C(gpgv) on the managed host when O(keyring) or O(fingerprint) is given.
seealso:
  - module: lxcfleet.lxc.container
  - name: lxc-create(1)
    description: LXC's download template, whose cache this module shares.
    link: https://linuxcontainers.org/lxc/manpages/man1/lxc-create.1.html
"""

EXAMPLES = r"""
- name: Cache the Debian bookworm image for the host's architecture
  lxcfleet.lxc.image:
    dist: debian
    release: bookworm
  register: bookworm

- name: Create a container from the cache, without another download
  ansible.builtin.command:
    argv: [lxc-create, -n, web1, -t, download, --, -d, debian, -r, bookworm, -a, "{{ bookworm.image.arch }}", --force-cache]
    creates: /var/lib/lxc/web1

- name: Keep an image up to date with the server, signature checked against a pinned key
  lxcfleet.lxc.image:
    dist: alpine
    release: "3.20"
    arch: arm64
    state: latest
    keyring: /etc/lxc/images-keyring.gpg
    fingerprint: "7A1F 0A5D 4C7E 6C3F 2E0D  8B3A 1D3E 9F4B 0C2A 6E11"

- name: A private image server with its own CA
  lxcfleet.lxc.image:
    dist: fleetos
    release: "2"
    server: https://images.example.internal
    ca_path: /etc/ssl/private-ca.pem

- name: List the Ubuntu images the server offers for amd64
  lxcfleet.lxc.image:
    list: true
    dist: ubuntu
    arch: amd64
  register: ubuntu_images

- name: Remove a cached image
  lxcfleet.lxc.image:
    dist: debian
    release: bullseye
    state: absent
"""

RETURN = r"""
image:
  description: The cache entry after the task (in check mode, as predicted). Not returned with O(list=true).
  returned: unless O(list=true)
  type: dict
  contains:
    dist:
      description: Distribution.
      type: str
      sample: debian
    release:
      description: Release.
      type: str
      sample: bookworm
    arch:
      description: Architecture (the host's when not given).
      type: str
      sample: amd64
    variant:
      description: Variant.
      type: str
      sample: default
    build_id:
      description:
        - The build in the cache (in check mode, the build that would be fetched); null when there is none.
      type: str
      sample: "20240101_05:24"
    expiry:
      description: When the entry expires, in seconds since the epoch (its C(expiry) file); null when it never does or there is no entry.
      type: int
      sample: 1735689600
    expired:
      description: Whether the entry has expired.
      type: bool
      sample: false
    path:
      description: The cache folder.
      type: str
      sample: /var/cache/lxc/download/debian/bookworm/amd64/default
    server:
      description: The server the entry was fetched from (the O(server) option for an entry this module did not write).
      type: str
      sample: https://images.linuxcontainers.org
    verified:
      description:
        - How the entry was verified when it was fetched. V(gpg) - signature and checksums, V(sha256) -
          checksums only; null when this module did not write the entry (for example C(lxc-create)).
      type: str
      sample: gpg
    fetched:
      description: Whether the task downloaded a build (in check mode, whether it would).
      type: bool
      sample: true
    index:
      description: Which index applies, V(user) or V(system).
      type: str
      sample: user
    rootfs:
      description: Path of C(rootfs.tar.xz) in the cache; null when there is no entry.
      type: str
      sample: /var/cache/lxc/download/debian/bookworm/amd64/default/rootfs.tar.xz
    meta:
      description:
        - The files of C(meta.tar.xz) in the cache, name to path; C(config), C(config-user), C(excludes-user),
          C(templates), C(expiry), C(create-message) and C(fstab) are always there (null when the image has none).
        - C(config) is the file that applies (C(config-user) for O(unprivileged=true) when the image has one).
      type: dict
      sample: {"config": "/var/cache/lxc/download/debian/bookworm/amd64/default/config-user", "templates": null}
images:
  description: With O(list=true), the server's images that match the given filters, in index order.
  returned: when O(list=true)
  type: list
  elements: dict
  contains:
    dist:
      description: Distribution.
      type: str
    release:
      description: Release.
      type: str
    arch:
      description: Architecture.
      type: str
    variant:
      description: Variant.
      type: str
    build_id:
      description: The build the server offers.
      type: str
    path:
      description: Path of the build's folder on the server.
      type: str
    cached:
      description: Whether the cache holds this build.
      type: bool
    cached_build_id:
      description: The build in the cache for this image, null when none.
      type: str
  sample: [{"dist": "debian", "release": "bookworm", "arch": "amd64", "variant": "default", "build_id": "20240101_05:24",
            "path": "/images/debian/bookworm/amd64/default/20240101_05:24/", "cached": false, "cached_build_id": null}]
index:
  description: The URL of the index that was read, with O(list=true).
  returned: when O(list=true)
  type: str
  sample: https://images.linuxcontainers.org/meta/1.0/index-user.7
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._image import main


if __name__ == "__main__":
    main()
