#!/usr/bin/env python3
"""Copies an OCI layout, adding to every layer the parent directory entries its tar omits.

Why: OCI layers may leave parent directories implied (the bench's dpkg-split layers do), and
`ctr-remote image optimize` of stargz-snapshotter 0.12 then fails ("failed to sort tar
entries: file: "usr/lib/python3": not found") when the workload read a file under such a
directory. An eStargz user would rebuild the image; this does the same with the least change:
each added directory carries the metadata it has in the layers below (the merged view), so
the unpacked image is identical. Only the eStargz peer's optimize variant uses the copy.

usage: add-parent-dirs.py <src-layout> <tag> <dst-layout>
"""
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile


def blob_path(layout, digest):
    return os.path.join(layout, 'blobs', *digest.split(':', 1))


def write_blob(layout, data):
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as out:
        out.write(data)
    return digest


def clean(name):
    while name.startswith('./') or name.startswith('/'):
        name = name[1:] if name.startswith('/') else name[2:]
    return name.rstrip('/')


def parents(name):
    parts = name.split('/')[:-1]
    return ['/'.join(parts[: i + 1]) for i in range(len(parts))]


class HashingWriter:
    """File wrapper counting and hashing what goes through (compressed digest and size)."""

    def __init__(self, raw):
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self):
        self.raw.flush()


class DiffIdWriter:
    """Uncompressed side: hashes the tar stream for the config's diff_ids, then gzips it."""

    def __init__(self, gz):
        self.gz, self.sha = gz, hashlib.sha256()

    def write(self, data):
        self.sha.update(data)
        return self.gz.write(data)


def rewrite_layer(src_blob, dst_layout, below):
    """Returns (digest, size, diff_id, added) of the layer with its missing parents added."""
    with tarfile.open(src_blob, 'r:gz') as tar:
        present = {clean(m.name) for m in tar}
    tmp = os.path.join(dst_layout, 'layer.tmp')
    added = 0
    with open(tmp, 'wb') as raw:
        hashing = HashingWriter(raw)
        with gzip.GzipFile(fileobj=hashing, mode='wb', compresslevel=6, mtime=0) as gz:
            diff = DiffIdWriter(gz)
            with tarfile.open(src_blob, 'r:gz') as tar, tarfile.open(fileobj=diff, mode='w|', format=tarfile.PAX_FORMAT) as out:
                emitted = set()
                for member in tar:
                    name = clean(member.name)
                    for parent in parents(name):
                        if parent in present or parent in emitted:
                            continue
                        emitted.add(parent)
                        info = below.get(parent)
                        if info is None:
                            info = tarfile.TarInfo(parent)
                            info.type, info.mode = tarfile.DIRTYPE, 0o755
                        else:
                            info = _copy(info, parent)
                        out.addfile(info)
                        added += 1
                    if member.isdir():
                        below[name] = _copy(member, name)
                    out.addfile(member, tar.extractfile(member) if member.isfile() else None)
    digest = 'sha256:' + hashing.sha.hexdigest()
    final = blob_path(dst_layout, digest)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(tmp, final)
    return digest, hashing.size, 'sha256:' + diff.sha.hexdigest(), added


def _copy(info, name):
    copy = tarfile.TarInfo(name)
    for field in ('type', 'mode', 'uid', 'gid', 'uname', 'gname', 'mtime'):
        setattr(copy, field, getattr(info, field))
    copy.pax_headers = dict(info.pax_headers)
    return copy


def main():
    src, tag, dst = sys.argv[1:4]
    index = json.load(open(os.path.join(src, 'index.json')))
    descriptor = next(m for m in index['manifests'] if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == tag)
    manifest = json.load(open(blob_path(src, descriptor['digest'])))
    config = json.load(open(blob_path(src, manifest['config']['digest'])))
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    with open(os.path.join(dst, 'oci-layout'), 'w') as out:
        json.dump({'imageLayoutVersion': '1.0.0'}, out)
    below, diff_ids, total = {}, [], 0
    for layer in manifest['layers']:
        digest, size, diff_id, added = rewrite_layer(blob_path(src, layer['digest']), dst, below)
        layer['digest'], layer['size'] = digest, size
        diff_ids.append(diff_id)
        total += added
    config['rootfs']['diff_ids'] = diff_ids
    config_bytes = json.dumps(config, separators=(',', ':')).encode()
    manifest['config']['digest'] = write_blob(dst, config_bytes)
    manifest['config']['size'] = len(config_bytes)
    manifest_bytes = json.dumps(manifest, separators=(',', ':')).encode()
    out_index = {
        'schemaVersion': 2,
        'manifests': [
            {
                'mediaType': manifest.get('mediaType', 'application/vnd.oci.image.manifest.v1+json'),
                'digest': write_blob(dst, manifest_bytes),
                'size': len(manifest_bytes),
                'annotations': {'org.opencontainers.image.ref.name': tag},
            }
        ],
    }
    with open(os.path.join(dst, 'index.json'), 'w') as out:
        json.dump(out_index, out)
    print(json.dumps({'addedDirectories': total}))


if __name__ == '__main__':
    main()
