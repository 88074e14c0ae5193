"""``Estimator``: the Azure ML v1 way to describe a training job — a script, its parameters, and its packages."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.config.environment import DockerSection, Environment, PythonSection
from runyard.config.conda_dependencies import CondaDependencies
from runyard.config.datapath import resume_arguments
from runyard.config.job import JobSpec, build_job
from runyard.errors import ConfigError, warn


class Estimator:
    """``Estimator(source_directory="./proj", entry_script="train.py", script_params={"--lr": 0.01}, pip_packages=[...])``.

    Args:
        source_directory: the folder snapshotted and run from.
        compute_target: a target name (``"local"``, the default) or a compute target object.
        entry_script: the script to run, relative to ``source_directory``.
        script_params: ``{option: value}``; a key without a leading dash gets ``--``; a value of None is a flag.
        arguments: a plain argument list instead of ``script_params`` (not both).
        use_gpu: the run needs a GPU (the local target queues it on a GPU slot; frameworks pick GPU builds).
        pip_packages, conda_packages: packages of the environment runyard builds for the run.
        pip_requirements_file, conda_dependencies_file: the same from a ``requirements.txt`` / ``environment.yml``.
        environment_variables: variables the run's processes see.
        custom_docker_image: run the processes in a container of this local image (needs a Docker engine); the
            packages are installed inside it (once, cached). ``custom_docker_base_image`` is its older name.
        use_docker: False runs without a container even when an image is named (a warning says so).
        shm_size: the container's /dev/shm size (``"2g"``).
        user_managed: run in the submitting interpreter as it is (no packages may be listed) — or, with
            ``custom_docker_image``, in the image's own Python as it is.
        inherit_base_packages: the built environment also sees the submitting interpreter's packages and installs
            only what they lack.
        environment_definition: a runyard ``Environment`` instead of the package arguments.
        inputs: data the script reads — ``[ds.path("mnist").as_mount(), dataset.as_named_input("x").as_download()]``
            (references among script_params / arguments are inputs already).
        max_run_duration_seconds: the run is stopped and marked Failed when it runs longer.
        max_run_retries: restart every rank this many times after a failed attempt (a rank's error, a lost node);
            the script resumes from what it saved in ``./outputs`` (kept across attempts).
        node_count, process_count_per_node: the job's size (more than one process needs a distributed backend).
        distributed_training: an MpiConfiguration, TensorflowConfiguration or PyTorchConfiguration (or the
            ``Mpi()``, ``ParameterServer()``, ``Gloo()``, ``Nccl()`` shorthands).
        distributed_backend: the older form: "mpi", "ps" (with worker_count, parameter_server_count) or "pytorch".

    With no packages, no environment and no framework, the run uses the submitting interpreter as it is.
    """

    framework_name: str | None = None  # set by the framework estimators (TensorFlow, PyTorch, SKLearn, Chainer)

    def __init__(
        self,
        source_directory: str | os.PathLike,
        *,
        compute_target: Any = None,
        entry_script: str | os.PathLike | None = None,
        script_params: Mapping[str, Any] | None = None,
        arguments: Sequence[Any] | None = None,
        use_gpu: bool = False,
        pip_packages: Sequence[str] | None = None,
        conda_packages: Sequence[str] | None = None,
        pip_requirements_file: str | os.PathLike | None = None,
        conda_dependencies_file: str | os.PathLike | None = None,
        environment_variables: Mapping[str, str] | None = None,
        custom_docker_image: str | None = None,
        custom_docker_base_image: str | None = None,
        use_docker: bool | None = None,
        shm_size: str | None = None,
        user_managed: bool = False,
        inherit_base_packages: bool = False,
        environment_definition: Environment | None = None,
        max_run_duration_seconds: float | None = None,
        framework_version: str | None = None,
        node_count: int = 1,
        process_count_per_node: int = 1,
        distributed_training: Any = None,
        distributed_backend: Any = None,
        worker_count: int | None = None,
        parameter_server_count: int | None = None,
        max_run_retries: int = 0,
        inputs: Sequence[Any] | None = None,
        resume_from: Any = None,
    ) -> None:
        self.source_directory = source_directory
        self.compute_target = compute_target
        self.entry_script = entry_script
        self.script_params = dict(script_params) if script_params else {}
        self.arguments = list(arguments) if arguments else []
        self.use_gpu = use_gpu
        self.pip_packages = list(pip_packages or [])
        self.conda_packages = list(conda_packages or [])
        self.pip_requirements_file = pip_requirements_file
        self.conda_dependencies_file = conda_dependencies_file
        self.environment_variables = dict(environment_variables or {})
        if custom_docker_image and custom_docker_base_image and custom_docker_image != custom_docker_base_image:
            raise ConfigError("give custom_docker_image or custom_docker_base_image (its older name), not both")
        self.custom_docker_image = custom_docker_image or custom_docker_base_image
        if use_docker is False and self.custom_docker_image:
            warn(f"use_docker=False wins over custom_docker_image={self.custom_docker_image!r}: the run does not use "
                 "a container")
            self.custom_docker_image = None
        self.use_docker = use_docker
        self.shm_size = shm_size
        self.user_managed = user_managed
        self.inherit_base_packages = inherit_base_packages
        self.environment_definition = environment_definition
        self.max_run_duration_seconds = max_run_duration_seconds
        self.framework_version = framework_version
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.distributed_training = distributed_training
        self.distributed_backend = distributed_backend
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
        self.max_run_retries = max_run_retries
        self.inputs = list(inputs) if inputs else []
        self.resume_from = resume_from
        if resume_from is not None:
            resume_arguments(resume_from)  # a bad value is an error here, not at submit
        if framework_version is not None and self.framework_name is None:
            raise ConfigError("framework_version belongs to a framework estimator: use TensorFlow, PyTorch or SKLearn")

    def environment(self) -> Environment:
        """The runyard Environment this estimator's arguments describe."""
        package_args = {"pip_packages": self.pip_packages, "conda_packages": self.conda_packages,
                        "pip_requirements_file": self.pip_requirements_file,
                        "conda_dependencies_file": self.conda_dependencies_file,
                        "custom_docker_image": self.custom_docker_image}
        given = [k for k, v in package_args.items() if v]
        framework = self._framework()
        if self.environment_definition is not None:
            if given:
                raise ConfigError(f"give the packages either in environment_definition or as {', '.join(given)}, not both")
            env = self.environment_definition.clone()
            if framework and not env.python.user_managed_dependencies:
                env.python.framework = framework
        elif self.user_managed and self.custom_docker_image:  # the image's own Python, as it is
            others = [g for g in given if g != "custom_docker_image"]
            if others:
                raise ConfigError(f"user_managed=True runs the image's Python as it is, so {', '.join(others)} would "
                                  "not be installed — drop them or set user_managed=False")
            env = Environment.from_docker_image("estimator", self.custom_docker_image)
        elif self.user_managed:
            if given:
                raise ConfigError(f"user_managed=True runs the interpreter as it is, so {', '.join(given)} would "
                                  "not be installed — drop them or set user_managed=False")
            env = Environment.from_existing_interpreter("current")
        elif not given and framework is None:
            env = Environment.from_existing_interpreter("current")
        else:
            env = self._built_environment(framework)
        if self.environment_variables:
            env.environment_variables = {**env.environment_variables, **self.environment_variables}
        if self.shm_size and env.docker.enabled:
            env.docker.shm_size = self.shm_size
        return env

    def _built_environment(self, framework: dict[str, str] | None) -> Environment:
        name = f"{framework['name']}-{framework['version']}" if framework else "estimator"
        if self.conda_dependencies_file:
            env = Environment.from_conda_specification(name, self.conda_dependencies_file)
        elif self.pip_requirements_file:
            env = Environment.from_pip_requirements(name, self.pip_requirements_file)
        else:
            env = Environment(name)
        cd: CondaDependencies = env.python.conda_dependencies
        for package in self.pip_packages:
            cd.add_pip_package(package)
        for package in self.conda_packages:
            cd.add_conda_package(package)
        env.python = PythonSection(conda_dependencies=cd, inherit_base_packages=self.inherit_base_packages,
                                   framework=framework)
        if self.custom_docker_image:
            env.docker = DockerSection(enabled=True, base_image=self.custom_docker_image)
        return env

    def _framework(self) -> dict[str, str] | None:
        if self.framework_name is None:
            return None
        from runyard.train.frameworks import check_version, framework, resolve_version

        fw = framework(self.framework_name)
        if self.framework_version is None:
            return {"name": fw.name, "version": fw.default_version}
        version, notice = resolve_version(fw.name, check_version(self.framework_version))
        if notice:
            warn(notice)
        return {"name": fw.name, "version": version}

    def to_job_spec(self) -> JobSpec:
        arguments, script_params = list(self.arguments), dict(self.script_params)
        if self.resume_from is not None:  # Azure: the checkpoints made available, --resume-from <their path> appended
            flag, path = resume_arguments(self.resume_from)
            if script_params:
                script_params[flag] = path
            else:
                arguments += [flag, path]
        return build_job(
            source_directory=self.source_directory, entry_script=self.entry_script, arguments=arguments,
            script_params=script_params, compute_target=self.compute_target,
            environment=self.environment(), use_gpu=self.use_gpu,
            max_run_duration_seconds=self.max_run_duration_seconds, node_count=self.node_count,
            process_count_per_node=self.process_count_per_node, distributed=self.distributed_training,
            distributed_backend=self.distributed_backend, worker_count=self.worker_count,
            parameter_server_count=self.parameter_server_count, max_run_retries=self.max_run_retries,
            inputs=self.inputs,
        )

    @classmethod
    def get_supported_versions(cls) -> list[str]:
        """The framework versions the configured package indexes offer (newest last); Azure ML's classmethod."""
        if cls.framework_name is None:
            return []
        from runyard.config.package_index import available_versions, pip_settings
        from runyard.train.frameworks import framework, release_series

        fw = framework(cls.framework_name)
        return release_series(available_versions(fw.cpu_package, pip_settings()) or [])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source_directory={os.fspath(self.source_directory)!r}, "
                f"entry_script={self.entry_script!r}, script_params={self.script_params!r})")
