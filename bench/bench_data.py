"""Datastore transfers: runyard's upload/download against boto3 and fsspec on the same data, in one run.

    .venv/bin/python bench/bench_data.py [--small 1000] [--big-mb 1024] [--repeat 3]

Data: ``--small`` files of 1–16 KB in 10 folders, and one ``--big-mb`` file (random bytes, written once).
Stores: the workspace's local datastore (a folder on the same disk) and S3 — moto's S3 server on 127.0.0.1 (an
emulator: the server's own speed bounds every tool alike; no AWS endpoint is contacted).

Peers, each into a fresh prefix/folder:
- local: ``shutil.copytree`` (what ``cp -r`` does) and fsspec's local ``put``/``get`` (recursive);
- S3: boto3 (one client, 32 threads of ``upload_file``/``download_file``, whose transfer manager sends big files in
  parallel parts — what ``aws s3 cp --recursive`` does) and s3fs's ``put``/``get`` (recursive, asyncio).
s5cmd is not on PyPI, so it is not among the peers.

runyard: ``Datastore.upload`` / ``download`` from a fresh workspace (nothing known of the files: the first upload
learns their tags), then the same upload again with ``overwrite=True`` (nothing changed: nothing moves). Small-file
figures (and the big file's) are medians of ``--repeat`` runs, each tool into a fresh place.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata address for credentials
os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "bench"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(scratch: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(scratch / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def _make_data(root: Path, small: int, big_mb: int) -> tuple[Path, Path]:
    rng = os.urandom
    small_dir = root / "small"
    for i in range(small):
        folder = small_dir / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(rng(1024 * (1 + i % 16)))
    big_dir = root / "big"
    big_dir.mkdir()
    with open(big_dir / "big.bin", "wb") as f:
        for _ in range(big_mb):
            f.write(rng(1 << 20))
    return small_dir, big_dir


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _files(src: Path) -> list[tuple[str, str]]:
    return [(str(p), p.relative_to(src).as_posix()) for p in sorted(src.rglob("*")) if p.is_file()]


# -- peers ------------------------------------------------------------------------------------------------------------
def _boto3(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=Config(max_pool_connections=64))


def boto3_upload(client, bucket: str, src: Path, prefix: str) -> None:
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda item: client.upload_file(item[0], bucket, f"{prefix}/{item[1]}"), _files(src)))


def boto3_download(client, bucket: str, prefix: str, dest: Path) -> None:
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
            for o in page.get("Contents", [])]

    def one(key: str) -> None:
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(path))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, keys))


def _s3fs(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, client_kwargs={"region_name": REGION}, skip_instance_cache=True)


# -- the run ----------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import fsspec

    from runyard import Workspace
    from runyard.data import Datastore

    scratch = Path(tempfile.mkdtemp(prefix="runyard-bench-data-"))
    moto, endpoint = _start_moto(scratch)
    rows: list[tuple[str, str, float, dict[str, float], float | None]] = []
    try:
        print(f"making {args.small} small files and one {args.big_mb} MB file in {scratch} …", file=sys.stderr)
        small, big = _make_data(scratch / "data", args.small, args.big_mb)
        client = _boto3(endpoint)
        local_fs = fsspec.filesystem("file")

        def fresh_ws() -> Workspace:
            return Workspace(scratch / f"ws-{uuid.uuid4().hex[:8]}")

        def s3_store(ws: Workspace) -> Datastore:
            return Datastore.register_s3(ws, "bench", bucket_name=f"b-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint,
                                         region=REGION, create_if_not_exists=True)

        for label, src, repeat in (("1,000 small files" if args.small == 1000 else f"{args.small} small files", small,
                                    args.repeat), (f"one {args.big_mb:,} MB file", big, args.repeat)):
            for store in ("local", "S3"):
                up, again, down = [], [], []
                peers_up: dict[str, list[float]] = {}
                peers_down: dict[str, list[float]] = {}
                for _ in range(repeat):
                    ws = fresh_ws()
                    ds = ws.get_default_datastore() if store == "local" else s3_store(ws)
                    up.append(_timed(lambda: ds.upload(str(src), "data", show_progress=False)))
                    again.append(_timed(lambda: ds.upload(str(src), "data", overwrite=True, show_progress=False)))
                    assert ds.last_transfer.transferred == 0, "an unchanged re-upload moved files"
                    out = scratch / f"dl-{uuid.uuid4().hex[:8]}"
                    down.append(_timed(lambda: ds.download(str(out), prefix="data", show_progress=False)))
                    shutil.rmtree(out)
                    if store == "local":
                        target = scratch / f"peer-{uuid.uuid4().hex[:8]}"
                        peers_up.setdefault("copytree", []).append(_timed(lambda: shutil.copytree(src, target / "a")))
                        peers_up.setdefault("fsspec", []).append(
                            _timed(lambda: local_fs.put(str(src), str(target / "b"), recursive=True)))
                        peers_down.setdefault("copytree", []).append(
                            _timed(lambda: shutil.copytree(target / "a", target / "c")))
                        peers_down.setdefault("fsspec", []).append(
                            _timed(lambda: local_fs.get(str(target / "b"), str(target / "d"), recursive=True)))
                        shutil.rmtree(target)
                    else:
                        bucket = ds.bucket_name
                        fs = _s3fs(endpoint)
                        peers_up.setdefault("boto3", []).append(_timed(lambda: boto3_upload(client, bucket, src, "boto")))
                        peers_up.setdefault("s3fs", []).append(
                            _timed(lambda: fs.put(str(src), f"{bucket}/s3fs", recursive=True)))
                        target = scratch / f"peer-{uuid.uuid4().hex[:8]}"
                        peers_down.setdefault("boto3", []).append(
                            _timed(lambda: boto3_download(client, bucket, "boto", target / "a")))
                        peers_down.setdefault("s3fs", []).append(
                            _timed(lambda: fs.get(f"{bucket}/s3fs", str(target / "b"), recursive=True)))
                        shutil.rmtree(target, ignore_errors=True)
                    shutil.rmtree(ws.path)
                med = statistics.median
                rows.append((label, f"upload to {store}", med(up), {k: med(v) for k, v in peers_up.items()},
                             med(again)))
                rows.append((label, f"download from {store}", med(down), {k: med(v) for k, v in peers_down.items()},
                             None))
    finally:
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("| data | operation | runyard s | peers s | runyard vs best peer | unchanged re-upload s (% of first) |")
    print("|---|---|---|---|---|---|")
    for label, op, ours, peers, again in rows:
        best_name, best = min(peers.items(), key=lambda kv: kv[1])
        peer_text = ", ".join(f"{k} {v:.3f}" for k, v in peers.items())
        speed = f"{best / ours:.2f}x ({'faster' if ours <= best else 'slower'} than {best_name})"
        redo = f"{again:.3f} ({100 * again / ours:.1f}%)" if again is not None else ""
        print(f"| {label} | {op} | {ours:.3f} | {peer_text} | {speed} | {redo} |")


if __name__ == "__main__":
    main()
