"""Environment builds: runyard vs raw `uv venv && uv pip install` vs `python -m venv && pip install` vs
`mlflow run --env-manager uv`, all for the same packages (numpy scikit-learn), in one run.

    python bench/bench_environments.py [--reps 3] [--packages numpy scikit-learn]

Rows:
- new environment, warm package cache: what a user pays when a spec is new (uv's/pip's download caches are warm,
  as they are after the first build on a machine); each rep builds into a fresh folder.
- new environment, empty package cache: the first build on a fresh machine (a fresh UV_CACHE_DIR each rep; pip
  with --no-cache-dir).
- cached hit: runyard's cost to find a built environment (plan + ensure, in process) — the part of every later
  submission that environments add.
- end to end: a run of a script that only prints, submitted with a new / an already built environment:
  `runyard submit --wait` vs `mlflow run --env-manager uv` (an MLproject with a python_env.yaml of the packages).

Network rule: packages come from this machine's local sources only (pip's file:// indexes and find-links; uv
offline); the script refuses to run where there are none.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
PY = "%d.%d" % sys.version_info[:2]


def local_sources() -> dict[str, str]:
    """Environment variables that make pip, uv and mlflow use only this machine's package sources."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from runyard.config.package_index import pip_settings

    settings = pip_settings()
    local = [u for u in (settings.index_url, *settings.extra_index_urls) if u and u.startswith("file://")]
    if not local:
        sys.exit("no local package index (pip's file:// index-url/extra-index-url): this benchmark stays off the network")
    env = {"PIP_INDEX_URL": local[0], "PIP_EXTRA_INDEX_URL": " ".join(local[1:]), "UV_OFFLINE": "1",
           "UV_PYTHON_DOWNLOADS": "never", "UV_INDEX_URL": local[0], "UV_EXTRA_INDEX_URL": " ".join(local[1:]),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if settings.find_links:
        env["PIP_FIND_LINKS"] = env["UV_FIND_LINKS"] = " ".join(settings.find_links)
    return env


def run(cmd: list[str] | str, env: dict, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, shell=isinstance(cmd, str))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def median(fn, reps: int) -> float:
    fn(0)  # warm-up: caches, page cache
    return statistics.median(fn(i + 1) for i in range(reps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--packages", nargs="+", default=["numpy", "scikit-learn"])
    args = parser.parse_args()
    pkgs = args.packages
    root = Path(tempfile.mkdtemp(prefix="runyard-bench-env-"))
    # The venv's bin/ first on PATH: `mlflow run --env-manager uv` looks for `uv` there (the bench runs as its
    # docstring says, with the venv's interpreter, whether or not the venv is activated).
    env = {**os.environ, **local_sources(), "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    uv = str(BIN / "uv")
    rows: list[tuple[str, str, float]] = []
    for ws in ("ws-cli", "ws-e2e"):  # `runyard -w PATH` names an existing workspace
        subprocess.run([str(BIN / "runyard"), "init", str(root / ws)], check=True, capture_output=True, env=env)

    def fresh(name: str, i: int) -> Path:
        path = root / f"{name}-{i}-{time.monotonic_ns()}"
        return path

    # -- new environment, warm package cache ------------------------------------------------------------
    def raw_uv(i: int, cache: dict | None = None) -> float:
        d = fresh("uv", i)
        e = {**env, **(cache or {})}
        return run([uv, "venv", "-q", str(d), "--python", sys.executable], e) + run(
            [uv, "pip", "install", "-q", "--python", str(d / "bin" / "python"), *pkgs], e)

    def runyard_api(i: int, cache: dict | None = None) -> float:
        code = ("import sys, time; from pathlib import Path; from runyard import Environment; "
                "from runyard import environments as E\n"
                f"env = Environment('bench'); [env.python.conda_dependencies.add_pip_package(p) for p in {pkgs!r}]\n"
                "t = time.perf_counter(); E.ensure(E.plan(Path(sys.argv[1]), env.to_spec()), lambda line: None)\n"
                "print(time.perf_counter() - t)")
        e = {**env, **(cache or {})}
        envs = root / "ry-envs"  # one cache folder, as in a workspace; the environment itself is removed each time
        for built in envs.glob("*"):
            if built.is_dir():
                shutil.rmtree(built)
        out = subprocess.run([sys.executable, "-c", code, str(envs)], env=e, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return float(out.stdout.strip().splitlines()[-1])

    def runyard_cli(i: int) -> float:
        return run([str(BIN / "runyard"), "-w", str(root / "ws-cli"), "env", "build", *sum((["--pip", p] for p in pkgs), [])],
                   {**env, "RUNYARD_ENV_DIR": str(fresh("rycli", i))})

    def pip_venv(i: int, no_cache: bool = False) -> float:
        d = fresh("pip", i)
        return run([sys.executable, "-m", "venv", str(d)], env) + run(
            [str(d / "bin" / "python"), "-m", "pip", "install", "-q", *(["--no-cache-dir"] if no_cache else []), *pkgs], env)

    t_uv = median(raw_uv, args.reps)
    t_ry = median(runyard_api, args.reps)
    t_cli = median(runyard_cli, args.reps)
    t_pip = median(pip_venv, max(1, args.reps - 1))
    rows += [("new env, warm cache", "uv venv + uv pip install", t_uv),
             ("new env, warm cache", "runyard (API: plan + build)", t_ry),
             ("new env, warm cache", "runyard env build (CLI)", t_cli),
             ("new env, warm cache", "python -m venv + pip install", t_pip)]

    # -- new environment, empty package cache ---------------------------------------------------------------
    empty = lambda i: {"UV_CACHE_DIR": str(fresh("uvcache", i))}  # noqa: E731
    t_uv0 = median(lambda i: raw_uv(i, empty(i)), args.reps)
    t_ry0 = median(lambda i: runyard_api(i, empty(i)), args.reps)
    t_pip0 = median(lambda i: pip_venv(i, no_cache=True), 1)
    rows += [("new env, empty cache", "uv venv + uv pip install", t_uv0),
             ("new env, empty cache", "runyard (API: plan + build)", t_ry0),
             ("new env, empty cache", "python -m venv + pip install --no-cache-dir", t_pip0)]

    # -- cached hit ------------------------------------------------------------------------------------------
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from runyard import Environment
    from runyard import environments as E

    os.environ.update(local_sources())
    spec_env = Environment("bench")
    for p in pkgs:
        spec_env.python.conda_dependencies.add_pip_package(p)
    hit_root = root / "hit"
    E.ensure(E.plan(hit_root, spec_env.to_spec()), lambda line: None)
    hits = []
    for _ in range(20):
        t = time.perf_counter()
        E.ensure(E.plan(hit_root, spec_env.to_spec()), lambda line: None)
        hits.append(time.perf_counter() - t)
    t_hit = statistics.median(hits)
    rows.append(("cached hit", "runyard (API: plan + ensure)", t_hit))

    # -- end to end: a run that only prints -----------------------------------------------------------------
    proj = root / "proj"
    proj.mkdir()
    (proj / "script.py").write_text("print('hello')\n")
    (proj / "requirements.txt").write_text("\n".join(pkgs) + "\n")
    (proj / "python_env.yaml").write_text(f"python: \"{'.'.join(map(str, sys.version_info[:3]))}\"\n"
                                          f"build_dependencies:\n  - pip\ndependencies:\n  - -r requirements.txt\n")
    (proj / "MLproject").write_text("name: bench\npython_env: python_env.yaml\nentry_points:\n"
                                    "  main:\n    command: python script.py\n")
    req_env = f"{root}/ws-e2e"
    ry_cmd = [str(BIN / "runyard"), "-w", req_env, "submit", "-s", str(proj), "script.py", "--wait", "-e", "bench",
              "--requirements", str(proj / "requirements.txt")]

    def runyard_e2e(i: int, envs: Path) -> float:
        return run([*ry_cmd], {**env, "RUNYARD_ENV_DIR": str(envs)}, cwd=proj)

    def mlflow_e2e(i: int, envs: Path) -> float:
        return run([str(BIN / "mlflow"), "run", str(proj), "--env-manager", "uv", "--experiment-name", "bench"],
                   {**env, "MLFLOW_ENV_ROOT": str(envs), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}, cwd=proj)

    rows_e2e = []
    if shutil.which("mlflow", path=str(BIN)):
        ry_new = median(lambda i: runyard_e2e(i, fresh("e2e-ry", i)), args.reps)
        ml_new = median(lambda i: mlflow_e2e(i, fresh("e2e-ml", i)), args.reps)
        keep_ry, keep_ml = root / "e2e-ry-kept", root / "e2e-ml-kept"
        ry_hit = median(lambda i: runyard_e2e(i, keep_ry), args.reps)
        ml_hit = median(lambda i: mlflow_e2e(i, keep_ml), args.reps)
        rows_e2e = [("end to end, new env", "runyard submit --wait", ry_new),
                    ("end to end, new env", "mlflow run --env-manager uv", ml_new),
                    ("end to end, built env", "runyard submit --wait", ry_hit),
                    ("end to end, built env", "mlflow run --env-manager uv", ml_hit)]
    rows += rows_e2e

    table = Table(title=f"environment builds: {' '.join(pkgs)} (median of {args.reps}; python {PY})")
    for col in ("case", "tool", "seconds"):
        table.add_column(col)
    for case, tool, seconds in rows:
        table.add_row(case, tool, f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s")
    console = Console()
    console.print(table)
    ratios = Table(title="ratios")
    ratios.add_column("comparison")
    ratios.add_column("ratio")
    ratios.add_column("target")
    ratios.add_row("runyard / raw uv (new env, warm cache)", f"{t_ry / t_uv:.2f}x", "≤ 1.2x")
    ratios.add_row("runyard / raw uv (new env, empty cache)", f"{t_ry0 / t_uv0:.2f}x", "≤ 1.2x")
    ratios.add_row("pip / runyard (new env, warm cache)", f"{t_pip / t_ry:.1f}x faster", "≥ 5x")
    ratios.add_row("pip / runyard (new env, empty cache)", f"{t_pip0 / t_ry0:.1f}x faster", "≥ 5x")
    ratios.add_row("runyard cached hit", f"{t_hit * 1000:.2f} ms", "≤ 50 ms")
    if rows_e2e:
        ratios.add_row("mlflow run / runyard submit (new env)", f"{ml_new / ry_new:.1f}x faster", "")
        ratios.add_row("mlflow run / runyard submit (built env)", f"{ml_hit / ry_hit:.1f}x faster", "")
    console.print(ratios)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
