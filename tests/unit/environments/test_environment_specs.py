"""Environment specs: normalisation, keys, requirement files, conda files, framework pins (pure: no builds)."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import env_with

from runyard import CondaDependencies, Environment
from runyard import environments as E
from runyard.environments import horovod
from runyard.environments import planning as plan_module
from runyard.config.package_index import IndexSettings, available_versions, pip_settings
from runyard.errors import ConfigError, NotFound, RunyardWarning, ValidationError
from runyard.train import frameworks


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A file:// simple index of our own (package → files) as pip's only source; no conda on PATH."""
    root = tmp_path / "index"

    def add(package: str, *files: str) -> None:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "index.html").write_text(
            "<html><body>" + "".join(f'<a href="../../files/{f}#sha256=0">{f}</a>' for f in files) + "</body></html>")

    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", f"file://{root}")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    (tmp_path / "wheels").mkdir()
    monkeypatch.setattr(plan_module, "_conda_tool", lambda: None)
    add.wheels = tmp_path / "wheels"
    return add


def key(env: Environment, root: Path, **kw) -> str:
    return E.plan(root, env.to_spec(), **kw).key


def test_key_ignores_order_case_and_variables_but_not_what_is_installed(tmp_path, index):
    a = env_with("e", "Tabulate>=0.9", "toolz")
    b = env_with("other", "toolz", "tabulate >= 0.9")
    b.environment_variables = {"OMP_NUM_THREADS": "2"}
    assert key(a, tmp_path) == key(b, tmp_path)
    assert key(a, tmp_path) != key(env_with("e", "tabulate>=0.10", "toolz"), tmp_path)
    assert key(a, tmp_path) != key(env_with("e", "Tabulate>=0.9", "toolz", inherit_base_packages=True), tmp_path)
    index("scikit-learn", "scikit_learn-1.9.1-cp311-cp311-manylinux_2_17_x86_64.whl")
    fw = env_with("e", framework={"name": "SKLearn", "version": "1.9"})
    assert key(fw, tmp_path) != key(fw, tmp_path, use_gpu=True)
    assert key(a, tmp_path) != key(a, tmp_path, tracking_uri="postgresql+psycopg://h/db")  # psycopg in the client


def test_plan_of_a_user_managed_environment_builds_nothing(tmp_path):
    plan = E.plan(tmp_path, Environment.from_existing_interpreter("current").to_spec())
    assert plan.key is None and plan.python == sys.executable and plan.ready


def test_plan_says_how_to_build_and_passes_index_options(tmp_path, index):
    env = env_with("e", "tabulate", "--extra-index-url https://mirror.example/simple")
    plan = E.plan(tmp_path / "envs", env.to_spec())
    assert not plan.ready and plan.path == str(tmp_path / "envs" / plan.key)
    assert plan.python == f"{plan.path}/bin/python"
    assert plan.build["install"] == ["tabulate"]
    assert plan.build["uv_options"][-2:] == ["--extra-index-url", "https://mirror.example/simple"]
    assert "--index-url" not in plan.build["uv_options"]  # the spec's own source replaces pip's indexes
    with pytest.raises(ConfigError, match="not supported"):
        E.plan(tmp_path, env_with("e", "--trusted-host x").to_spec())
    with pytest.raises(ConfigError, match="not valid"):
        E.plan(tmp_path, env_with("e", "tabulate==>1").to_spec())


def test_requirements_file_with_includes_comments_and_constraints(tmp_path, index):
    (tmp_path / "base.txt").write_text("toolz  # functional tools\n")
    (tmp_path / "pins.txt").write_text("tabulate<1\n")
    (tmp_path / "requirements.txt").write_text(textwrap.dedent("""
        # training deps
        -r base.txt
        -c pins.txt
        tabulate
        --find-links ./wheels
    """))
    env = Environment.from_pip_requirements("req", tmp_path / "requirements.txt")
    assert env.python.conda_dependencies.pip_packages == ["toolz", "tabulate"]
    plan = E.plan(tmp_path / "envs", env.to_spec())
    assert plan.build["request"]["constraints"] == ["tabulate<1"]  # by content: editing the file changes the key
    (tmp_path / "pins.txt").write_text("tabulate<0.9\n")
    assert E.plan(tmp_path / "envs", env.to_spec()).key != plan.key
    with pytest.raises(NotFound):
        Environment.from_pip_requirements("x", tmp_path / "missing.txt")


def test_conda_file_round_trip_and_python_version(tmp_path):
    (tmp_path / "env.yml").write_text(textwrap.dedent("""
        name: tf
        channels: [conda-forge]
        dependencies:
          - python=3.10
          - numpy=1.26
          - pip:
            - --extra-index-url https://mirror.example/simple
            - tabulate
    """))
    env = Environment.from_conda_specification("tf", tmp_path / "env.yml")
    cd = env.python.conda_dependencies
    assert (cd.python_version, cd.conda_packages, cd.pip_packages, cd.channels) == ("3.10", ["numpy=1.26"], ["tabulate"], ["conda-forge"])
    again = CondaDependencies(cd.save(tmp_path / "again.yml"))
    assert again == cd
    assert Environment.from_spec(env.to_spec()).to_spec() == env.to_spec()
    with pytest.raises(ConfigError, match="unknown key"):
        CondaDependencies.from_dict({"dependencies": [], "pips": []})
    with pytest.raises(ValidationError):
        CondaDependencies.create(python_version="three")


def test_conda_packages_without_conda_go_through_pip_with_a_warning(tmp_path, index):
    index("tabulate", "tabulate-0.10.0-py3-none-any.whl")
    env = Environment("c")
    for p in ("pytorch=2.13", "cudatoolkit=11.8", "tabulate=0.10", "scikit-learn>=1.5"):
        env.python.conda_dependencies.add_conda_package(p)
    plan = E.plan(tmp_path, env.to_spec())
    assert plan.build["request"]["requirements"] == ["scikit-learn>=1.5", "tabulate==0.10.*", "torch==2.13.*"]
    assert "no conda" in plan.warnings[0] and "cudatoolkit" in plan.warnings[0]
    env.python.conda_dependencies.add_conda_package("libgfortran-ng")  # conda-only, and not on the index
    with pytest.raises(ConfigError, match="libgfortran-ng.*no conda, mamba or micromamba"):
        E.plan(tmp_path, env.to_spec())


def test_user_managed_environment_cannot_list_packages():
    env = Environment.from_existing_interpreter("current")
    env.python.conda_dependencies.add_pip_package("tabulate")
    with pytest.raises(ConfigError, match="user_managed_dependencies=True"):
        env.to_spec()


def test_pip_settings_read_config_files_and_variables(tmp_path, monkeypatch):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nfind-links = /w1 /w2\n"
                    "[install]\nconstraint = /c.txt\n")
    settings = pip_settings({"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path), "XDG_CONFIG_DIRS": str(tmp_path / "none"),
                             "PIP_EXTRA_INDEX_URL": "https://extra.example/simple"})
    assert settings.uv_args() == ["--index-url", "https://mirror.example/simple", "--extra-index-url",
                                  "https://extra.example/simple", "--find-links", "/w1", "--find-links", "/w2",
                                  "--constraint", "/c.txt", "--index-strategy", "unsafe-best-match"]  # as pip
    assert pip_settings({"UV_INDEX_URL": "https://uv.example"}).uv_args() == []  # uv's own settings win
    offline = pip_settings({"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/w"})
    assert offline.uv_args() == ["--no-index", "--find-links", "/w"] and offline.indexes() == []


def test_framework_versions_come_from_the_index_and_unknown_ones_list_what_exists(tmp_path, index):
    index("tensorflow-cpu", *(f"tensorflow_cpu-{v}-cp311-cp311-manylinux_2_17_x86_64.whl" for v in ("2.20.0", "2.21.0", "2.21.1")))
    index("tensorflow", "tensorflow-2.21.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    settings = pip_settings()
    assert available_versions("tensorflow-cpu", settings) == ["2.20.0", "2.21.0", "2.21.1"]
    tf = frameworks.framework("TensorFlow")
    # What Azure's TensorFlow image held beside it comes along (TensorBoard of the same series: tf.summary needs it).
    stack = ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pillow"]
    assert frameworks.pin(tf, "2.21", False, settings, (3, 11)) == (
        ["tensorflow-cpu==2.21.*", *stack, "tensorboard==2.21.*"], [])
    assert frameworks.pin(tf, "2.21", True, settings, (3, 11))[0][0] == "tensorflow[and-cuda]==2.21.*"
    with pytest.raises(ConfigError, match=r"TensorFlow framework_version '2.99' does not exist.*tensorflow-cpu 2.20, 2.21"):
        frameworks.pin(tf, "2.99", False, settings, (3, 11))
    assert frameworks.release_series(["2.20.0", "2.21.0rc1", "2.21.0", "2.21.1+cpu"]) == ["2.20", "2.21"]
    with pytest.raises(ConfigError, match="must look like"):
        frameworks.check_version("latest")
    with pytest.raises(ConfigError, match="have no scikit-learn package"):
        frameworks.pin(frameworks.framework("SKLearn"), "1.9", False, settings, (3, 11))
    assert available_versions("nothing", IndexSettings(index_url=f"file://{tmp_path}/none")) is None  # unreadable


def test_pytorch_prefers_a_local_cpu_wheel_and_else_the_cpu_index(tmp_path, index):
    index("torch", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    torch = frameworks.framework("PyTorch")
    settings = pip_settings()
    with_torch = ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pillow", "tensorboard"]
    assert frameworks.pin(torch, "2.13", False, settings, (3, 11)) == (
        ["torch==2.13.*", *with_torch], ["--extra-index-url", "https://download.pytorch.org/whl/cpu"])
    (index.wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    (index.wheels / "torch-2.13.0+cpu-cp310-cp310-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert frameworks.pin(torch, "2.13", False, settings, (3, 11)) == (["torch==2.13.0+cpu", *with_torch], [])
    assert frameworks.pin(torch, "2.13", True, settings, (3, 11)) == (["torch==2.13.*", *with_torch], [])  # GPU: CUDA


def test_estimators_describe_their_environment(tmp_path, index):
    from runyard.train.dnn import PyTorch, TensorFlow
    from runyard.train.estimator import Estimator
    from runyard.train.sklearn import SKLearn

    (tmp_path / "t.py").write_text("print(1)\n")
    plain = Estimator(tmp_path, entry_script="t.py").environment()
    assert plain.python.user_managed_dependencies  # no packages: the submitting interpreter as it is
    tf = TensorFlow(tmp_path, entry_script="t.py", framework_version="2.21", pip_packages=["matplotlib"],
                    environment_variables={"A": "1"}).environment()
    assert (tf.name, tf.python.framework, tf.python.conda_dependencies.pip_packages, tf.environment_variables) == (
        "TensorFlow-2.21", {"name": "TensorFlow", "version": "2.21"}, ["matplotlib"], {"A": "1"})
    assert PyTorch(tmp_path, entry_script="t.py").environment().python.framework["version"] == "2.13"
    assert SKLearn(tmp_path, entry_script="t.py", user_managed=True).environment().python.user_managed_dependencies
    with pytest.raises(ConfigError, match="not both"):
        TensorFlow(tmp_path, entry_script="t.py", pip_packages=["x"], environment_definition=Environment("e")).environment()
    with pytest.raises(ConfigError, match="framework estimator"):
        Estimator(tmp_path, entry_script="t.py", framework_version="2.0")
    docker = Estimator(tmp_path, entry_script="t.py", custom_docker_image="python:3.11-slim").environment()
    assert docker.docker.enabled and docker.docker.base_image == "python:3.11-slim"


def test_horovod_is_compiled_by_the_builder_not_installed_by_uv(tmp_path, index):
    index("torch", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    torch_env = {"name": "PyTorch", "version": "2.13"}
    plain = E.plan(tmp_path, env_with("e", "tabulate", framework=torch_env).to_spec())
    assert "horovod" not in plain.build["request"]  # environments without it keep their keys
    # Named with extras and an Azure-era pin: compiled (the last release, said), never passed to uv.
    with_horovod = env_with("e", "tabulate", "Horovod[pytorch]==0.19.1", framework=torch_env).to_spec()
    asked = E.plan(tmp_path, with_horovod)
    assert asked.build["request"]["horovod"] == {"version": horovod.VERSION, "recipe": horovod.RECIPE}
    assert not any("horovod" in r for r in asked.build["install"]) and asked.key != plain.key
    assert any("building Horovod 0.28.1, its last release" in w for w in asked.warnings)
    # A framework environment of an MPI job gets it (and mpi4py) unasked, as Azure's images had them.
    mpi = E.plan(tmp_path, env_with("e", "tabulate", framework=torch_env).to_spec(), mpi=True)
    assert mpi.build["request"]["horovod"] and "mpi4py" in mpi.build["install"]
    assert any("gets Horovod 0.28.1 and mpi4py" in w for w in mpi.warnings)
    assert E.plan(tmp_path, env_with("e", "tabulate").to_spec(), mpi=True).build["request"].get("horovod") is None
    # The pip spelling of the framework counts too; none at all is refused before anything is built.
    assert E.plan(tmp_path, env_with("e", "tensorflow-cpu==2.21.*", "horovod").to_spec()).build["request"]["horovod"]
    with pytest.raises(ConfigError, match="neither PyTorch nor TensorFlow"):
        E.plan(tmp_path, env_with("e", "horovod[tensorflow]").to_spec())


def test_horovod_source_patches_apply_and_a_changed_source_is_refused(tmp_path):
    from runyard.errors import EnvironmentBuildError

    src = tmp_path / "horovod"
    files = {"CMakeLists.txt": "project(horovod)\nset(CMAKE_CXX_STANDARD 14)\n",
             "horovod/torch/CMakeLists.txt": "if(X)\n    set(CMAKE_CXX_STANDARD 14)\nendif()\n",
             "horovod/tensorflow/CMakeLists.txt": 'list(APPEND TF_SOURCES "a.cc")\n'
                                                  'list(APPEND TF_SOURCES "${D}/horovod/tensorflow/xla_mpi_ops.cc")\n',
             "horovod/tensorflow/keras/__init__.py": "from tensorflow import keras\nif new:\n    from keras import "
                                                     "backend as K\nelse:\n    pass\n"}
    files["horovod/tensorflow/keras/callbacks.py"] = files["horovod/tensorflow/keras/__init__.py"]
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    horovod.patch(src)
    assert "CMAKE_CXX_STANDARD 17" in (src / "CMakeLists.txt").read_text()
    assert "CMAKE_CXX_STANDARD 17" in (src / "horovod/torch/CMakeLists.txt").read_text()
    assert (src / "horovod/tensorflow/CMakeLists.txt").read_text() == 'list(APPEND TF_SOURCES "a.cc")\n'
    assert "    K = keras.backend" in (src / "horovod/tensorflow/keras/callbacks.py").read_text()
    with pytest.raises(EnvironmentBuildError, match="is not what runyard patches"):
        horovod.patch(src)  # patched already: nothing matches, and that is said rather than compiled


def test_docker_argv_mounts_the_run_and_passes_variables_by_name():
    argv = E.docker_argv({"image": "python:3.11-slim", "arguments": ["--ipc", "host"], "shm_size": "1g",
                          "memory": "512m", "cpus": 1.5},
                         ["/e/bin/python", "-u", "t.py"], ["B", "A"], "/runs/x/wd", ["/ws", "/runs/x/wd"],
                         read_only=["/ry", "/ws"], gpus="0,1", name="runyard-r1-0", labels={"runyard.run": "r1"})
    assert Path(argv[0]).name == "docker" and argv[1:5] == ["run", "--pull", "never", "--init"] and "--rm" not in argv
    assert argv[argv.index("--workdir") + 1] == "/runs/x/wd" and argv[argv.index("--name") + 1] == "runyard-r1-0"
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"] == ["/runs/x/wd:/runs/x/wd", "/ws:/ws",
                                                                             "/ry:/ry:ro"]  # writable wins
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--env"] == ["A", "B"]
    assert argv[argv.index("--label") + 1] == "runyard.run=r1"
    assert argv[argv.index("--memory") + 1] == "512m" == argv[argv.index("--memory-swap") + 1]
    assert argv[argv.index("--cpus") + 1] == "1.5" and argv[argv.index("--shm-size") + 1] == "1g"
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'  # one value for docker's CSV parsing
    assert argv[-6:] == ["--ipc", "host", "python:3.11-slim", "/e/bin/python", "-u", "t.py"]


def test_docker_settings_are_checked_and_travel_in_the_spec(tmp_path):
    from runyard.config import DockerConfiguration, ScriptRunConfig
    from runyard.train.estimator import Estimator

    env = Environment.from_docker_image("img", "runyard/base:bookworm")
    spec = env.to_spec()
    assert spec["docker"]["enabled"] and spec["python"]["user_managed_dependencies"]
    assert spec["python"]["interpreter_path"] is None  # the image's python, not this machine's
    env.docker.memory, env.docker.cpus = "2g", 2
    assert Environment.from_spec(env.to_spec()).docker.memory == "2g"
    for field_name, bad in (("memory", "lots"), ("shm_size", "1 GB"), ("cpus", -1)):
        broken = Environment.from_docker_image("img", "runyard/base:bookworm")
        setattr(broken.docker, field_name, bad)
        with pytest.raises(ConfigError, match=f"docker.{field_name}"):
            broken.to_spec()
    both = Environment.from_docker_image("img", "x")
    both.docker.base_dockerfile = "FROM x\n"
    with pytest.raises(ConfigError, match="not both"):
        both.to_spec()
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM runyard/base:bookworm\nRUN true\n")
    assert Environment.from_dockerfile("df", dockerfile).docker.base_dockerfile == dockerfile.read_text()
    (tmp_path / "t.py").write_text("")
    config = ScriptRunConfig(tmp_path, "t.py", environment=Environment.from_docker_image("img", "x"),
                             docker_runtime_config=DockerConfiguration(use_docker=True, memory="1g", shm_size="2g"))
    docker = config.run_config.effective_environment(config.docker_runtime_config).docker
    assert (docker.memory, docker.shm_size) == ("1g", "2g")
    old = Estimator(tmp_path, entry_script="t.py", custom_docker_base_image="img:1", user_managed=True).environment()
    assert old.docker.base_image == "img:1" and old.python.user_managed_dependencies
    with pytest.warns(RunyardWarning, match="use_docker=False wins"):
        off = Estimator(tmp_path, entry_script="t.py", custom_docker_image="img:1", use_docker=False).environment()
    assert not off.docker.enabled


def test_image_names_are_checked_and_split_as_docker_does():
    from runyard.environments.docker import check_image_name, split_tag

    for name in ("digits:1", "team/digits:v2", "localhost:5000/a/b:c", "runyard/base:bookworm", "a__b.c-d"):
        assert check_image_name(name) == name
    for bad in ("Digits:1", "a::b", "x y", ":t", "a/", ""):
        with pytest.raises(ConfigError, match="not an image name Docker takes"):
            check_image_name(bad)
    assert split_tag("a/b:c") == ("a/b", "c") and split_tag("a") == ("a", "latest")
    assert split_tag("localhost:5000/a") == ("localhost:5000/a", "latest")  # a registry's port is not a tag


def test_client_requirements_stay_in_step_with_pyproject():
    tomllib = pytest.importorskip("tomllib")

    deps = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("<")[0].split("=")[0] for d in deps}
    assert {r.split(">")[0].split("<")[0] for r in E.CLIENT_REQUIREMENTS} <= names


def test_gpus_for_slot_spreads_gpus_over_slots():
    from runyard.runtime.resources import gpus_for_slot

    assert gpus_for_slot(["0", "1", "2", "3"], 1, 4) == ["1"]
    assert gpus_for_slot(["0", "1", "2", "3"], 1, 2) == ["1", "3"]
    assert gpus_for_slot(["0", "1"], 0, 1) == ["0", "1"]
