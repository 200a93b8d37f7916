"""Checksummed, atomic file downloads (urllib; any URL scheme urllib opens, file:// included)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks (`algorithm`: 'md5', 'sha256', ...)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, sha256: str | None = None, md5: str | None = None) -> None:
    """Raise ValueError naming `path`, expected and actual digest when a given checksum differs."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise ValueError(
                f"{path}: {algorithm} mismatch: expected {expected.lower()}, got {actual}"
            )


def download(url: str, dest: Path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Fetch `url` to `dest` atomically: stream to a temp file beside it, verify, then rename.

    On a checksum mismatch the temp file is deleted, `dest` is left untouched and a ValueError
    names the file with the expected and actual digest. Returns `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashers = {name: hashlib.new(name) for name, want in (("sha256", sha256), ("md5", md5)) if want}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                out.write(chunk)
                for hasher in hashers.values():
                    hasher.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        for name, want in (("sha256", sha256), ("md5", md5)):
            if want and hashers[name].hexdigest() != want.lower():
                raise ValueError(
                    f"{dest.name} (from {url}): {name} mismatch: expected {want.lower()}, "
                    f"got {hashers[name].hexdigest()}"
                )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def download_first(
    urls: list[str] | tuple[str, ...], dest: Path, sha256: str | None = None, md5: str | None = None
) -> Path:
    """Try each mirror in turn with `download`; network errors fall through, checksum errors stop.

    Raises OSError naming `dest` and every URL tried when no mirror could be reached.
    """
    errors: list[str] = []
    for url in urls:
        try:
            return download(url, dest, sha256=sha256, md5=md5)
        except OSError as err:  # URLError and socket errors are OSErrors
            errors.append(f"{url}: {err}")
    raise OSError(f"{Path(dest).name}: download failed from every mirror ({'; '.join(errors)})")
