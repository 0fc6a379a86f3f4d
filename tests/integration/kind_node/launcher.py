"""The last step before a container's process: its own view of the filesystem.

Started by the node agent as ``ip netns exec <pod netns> python launcher.py spec.json``
(as root): ``ip netns exec`` has already put us in the pod's network namespace and in a
mount namespace of our own (its mounts are slaves of the host's, so nothing done here
leaks out, and all of it disappears with the process). Here, in order:

1. a fresh tmpfs on /run, as in an image where /run is empty (and /var/run -> /run):
   mount points under it, such as /var/run/secrets/..., can then be created without
   touching the host; every volume's source is bound aside there first, so a volume on
   /tmp cannot hide the others' sources (the node keeps them under /tmp);
2. "image" paths the container's user could not reach on this host (the virtualenv's
   interpreter lives under root's 0700 home) are made reachable: the closed ancestor is
   covered by a tmpfs and the path bound back into it; the rest of that home stays hidden;
3. each volumeMount bound at its mountPath (read-only when asked), /etc/hosts and
   /etc/resolv.conf of the pod bound over the host's; an image path that a volume now
   hides (this checkout under /tmp, an emptyDir on /tmp) is bound back inside it;
4. with readOnlyRootFilesystem, the root mount remounted read-only (in this namespace
   only; other mounts such as /dev and /proc keep their flags, as in a container);
5. exec ``setpriv`` with the container's user, groups, no_new_privs and capability
   bounding set, which execs the command (found on the container's PATH).

Standard library only: this file runs before anything of the project is importable.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def bind(source: str, target: str, *, read_only: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def make_target(path: str, is_file: bool) -> str:
    """The mount point, created if missing - only where a tmpfs of ours holds it."""
    real = os.path.realpath(path)
    if not os.path.lexists(real):
        parent = os.path.dirname(real)
        if not (parent == "/run" or parent.startswith("/run/")) and not os.path.isdir(parent):
            raise SystemExit(f"launcher: mount point {path} does not exist and is not under /run; "
                             "the host's root filesystem is the image's and is never changed")
        os.makedirs(parent if is_file else real, exist_ok=True)
        if is_file:
            open(real, "a").close()  # noqa: SIM115 - an empty file to bind onto
    return real


def reach_image_paths(paths: list[str], uid: int) -> None:
    """Make each path traversable for `uid` when an ancestor is closed to others."""
    if uid == 0:
        return
    for n, path in enumerate(paths):
        closed = next((a for a in _ancestors(path) if not os.stat(a).st_mode & 0o001), None)
        if closed is None:
            continue
        stash = f"/run/.image-{n}"
        os.makedirs(stash)
        bind(path, stash, read_only=True)
        mount("tmpfs", closed, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        os.makedirs(path, exist_ok=True)
        bind(stash, path, read_only=True)


def set_aside(source: str, name: str) -> str:
    """Bind `source` under /run before other mounts can hide it; return where it went."""
    stash = make_target(f"/run/.{name}", os.path.isfile(source))
    bind(source, stash)
    return stash


def hidden_by(path: str, targets: list[str]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets)


def _ancestors(path: str) -> list[str]:
    parts = os.path.realpath(path).split("/")[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    mount("none", "/", None, MS_REC | MS_PRIVATE)  # our mounts stay ours
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    # Every source is set aside first: a mount on /tmp would hide sources that live under /tmp.
    stashed = [set_aside(m["source"], f"volume-{n}") for n, m in enumerate(spec["mounts"])]
    reach_image_paths(spec["imagePaths"], spec["uid"])
    # So is each image path a volume will hide (this checkout under /tmp, an emptyDir on
    # /tmp); it is bound back inside the volume afterwards, where a real image never puts code.
    targets = [os.path.realpath(m["target"]) for m in spec["mounts"]]
    hidden = [real for real in map(os.path.realpath, spec["imagePaths"]) if hidden_by(real, targets)]
    kept = [set_aside(path, f"image-kept-{n}") for n, path in enumerate(hidden)]
    for m, stash in zip(spec["mounts"], stashed):
        bind(stash, make_target(m["target"], os.path.isfile(stash)), read_only=m["readOnly"])
    for path, stash in zip(hidden, kept):
        os.makedirs(path, exist_ok=True)  # inside the volume, which is this pod's own
        bind(stash, path, read_only=True)
    if spec["readOnlyRootFilesystem"]:
        mount("none", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chdir(spec["workingDir"])
    setpriv = ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}", "--pdeathsig=keep"]
    groups = spec["groups"]
    setpriv.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    if spec["noNewPrivs"]:
        setpriv.append("--no-new-privs")
    if spec["dropAllCapabilities"]:
        setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
    os.execvpe("setpriv", [*setpriv, "--", *spec["argv"]], spec["env"])


if __name__ == "__main__":
    main()
