"""Captured logs are capped and rotated; a follower reads them live across rotations."""
import threading
import time

from runyard.runtime.logfiles import RotatingLog, decode_chunks, follow, rotated_path


def test_rotation_keeps_bounded_parts(tmp_path):
    log = RotatingLog(tmp_path / "user_log_0.txt", max_bytes=1024, backups=2)
    for i in range(100):
        log.write(f"line {i:04d} ".encode() * 10 + b"\n")  # 101 bytes each, ~10 KB in all
    log.close()
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert parts == ["user_log_0.1.txt", "user_log_0.2.txt", "user_log_0.txt"]
    assert all((tmp_path / p).stat().st_size <= 1024 for p in parts)
    assert log.last_lines(1) == [("line 0099 " * 10)]
    assert log.rotations >= 8
    assert (tmp_path / "user_log_0.txt").read_bytes().endswith(b"line 0099 \n")


def test_follow_reads_everything_across_rotations(tmp_path):
    path = tmp_path / "user_log_0.txt"
    log = RotatingLog(path, max_bytes=1024, backups=1)
    done = threading.Event()

    def writer():
        for i in range(200):
            log.write(f"{i}\n".encode())
            if i % 20 == 0:
                time.sleep(0.01)
        done.set()

    threading.Thread(target=writer).start()
    text = "".join(decode_chunks(follow(path, done.is_set, poll=0.005)))
    assert text.splitlines() == [str(i) for i in range(200)]


def test_follow_returns_when_no_file_appears_and_writer_is_done(tmp_path):
    assert list(follow(tmp_path / "never.txt", lambda: True)) == []


def test_decode_never_splits_a_character():
    data = "héllo wörld ✓".encode()
    chunks = [data[i:i + 1] for i in range(len(data))]
    assert "".join(decode_chunks(chunks)) == "héllo wörld ✓"


def test_rotated_path_names():
    from pathlib import Path

    assert rotated_path(Path("logs/user_log_3.txt"), 0) == Path("logs/user_log_3.txt")
    assert rotated_path(Path("logs/user_log_3.txt"), 2) == Path("logs/user_log_3.2.txt")
