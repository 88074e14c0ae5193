"""Azure ML's older deployment shapes, served by runyard's local services.

    image_config = ContainerImage.image_configuration(execution_script="score.py", runtime="python",
                                                      conda_file="myenv.yml")
    aci_config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, tags={"data": "mnist"},
                                                    description="digits", auth_enabled=True)
    service = Webservice.deploy_from_model(ws, "mnist-svc", [model], image_config, aci_config)

No container image is built: an "image" is the scoring script and its environment, which the service runs in a
built (cached) environment on this machine. ``AciWebservice`` / ``AksWebservice`` are runyard's local service with
Azure's surface; their sizing (``cpu_cores``, ``memory_gb``, autoscale…) is recorded on the service, and
``auth_enabled`` works as in Azure (off by default for ACI, on for AKS).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.deploy.service import LocalWebservice, inference_config_of
from runyard.errors import ConfigError

if TYPE_CHECKING:
    from runyard.deploy.service import InferenceConfig
    from runyard.model import Model
    from runyard.workspace import Workspace


@dataclass
class ContainerImageConfig:
    """What ``ContainerImage.image_configuration`` returns: a scoring script and its environment."""

    execution_script: str
    runtime: str = "python"
    conda_file: str | None = None
    source_directory: str = "."
    dependencies: list[str] = field(default_factory=list)
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enable_gpu: bool = False

    def inference_config(self) -> "InferenceConfig":
        from runyard.config.environment import Environment
        from runyard.deploy.service import InferenceConfig

        if str(self.runtime).lower() not in ("python", "spark-py"):
            raise ConfigError(f"runtime must be 'python', got {self.runtime!r}")
        source = Path(self.source_directory).expanduser().absolute()
        for dep in self.dependencies:
            if not (source / dep).exists():
                raise ConfigError(f"dependency {dep!r} of the image is not in {source}")
        environment = None
        if self.conda_file:
            conda = Path(self.conda_file)
            environment = Environment.from_conda_specification(f"image-{Path(self.execution_script).stem}",
                                                               conda if conda.is_absolute() else source / conda)
        return InferenceConfig(entry_script=self.execution_script, source_directory=str(source),
                               environment=environment)


class ContainerImage:
    @staticmethod
    def image_configuration(execution_script: str, runtime: str = "python", conda_file: str | None = None,
                            docker_file: str | None = None, schema_file: str | None = None,
                            dependencies: list[str] | None = None, enable_gpu: bool | None = None,
                            tags: dict[str, str] | None = None, properties: dict[str, str] | None = None,
                            description: str | None = None, base_image: str | None = None,
                            base_image_registry: Any = None, cuda_version: str | None = None,
                            source_directory: str | None = None) -> ContainerImageConfig:
        """``docker_file``, ``base_image`` and ``schema_file`` are accepted and not used (no image is built)."""
        return ContainerImageConfig(execution_script, runtime, conda_file, source_directory or ".",
                                    list(dependencies or []), description, dict(tags or {}), bool(enable_gpu))


@dataclass
class Image:
    """``Image.create(ws, name, models, image_config)``: models with their scoring configuration, ready to deploy
    with ``Webservice.deploy_from_image`` (nothing is built until then)."""

    workspace: "Workspace"
    name: str
    models: list["Model"]
    image_config: ContainerImageConfig

    @staticmethod
    def create(workspace: "Workspace", name: str, models: list["Model"], image_config: ContainerImageConfig) -> "Image":
        inference_config_of(image_config)  # a missing script or conda file fails now, as Azure's build would
        return Image(workspace, name, list(models), image_config)

    def wait_for_creation(self, show_output: bool = False) -> None:
        if show_output:
            print(f"image {self.name}: {len(self.models)} model(s) with {self.image_config.execution_script} "
                  "(runyard builds no container; the service's environment is built when it is deployed)")

    @property
    def creation_state(self) -> str:
        return "Succeeded"


def _deployment_config(compute_type: str, auth_default: bool, auth_enabled: bool | None, tags: Any,
                       description: str | None, port: int | None, timeout_seconds: float, sizing: dict[str, Any]):
    from runyard.deploy.service import LocalWebserviceDeploymentConfiguration

    recorded = {k: v for k, v in sizing.items() if v is not None and isinstance(v, (str, int, float, bool))}
    return LocalWebserviceDeploymentConfiguration(
        port=port, auth_enabled=auth_default if auth_enabled is None else bool(auth_enabled),
        timeout_seconds=timeout_seconds, tags={str(k): str(v) for k, v in (tags or {}).items()},
        description=description, azure={"compute_type": compute_type, **recorded})


class AciWebservice(LocalWebservice):
    """Azure Container Instances' surface on a local service (``AciWebservice(ws, name)`` opens one)."""

    @staticmethod
    def deploy_configuration(cpu_cores: float | None = None, memory_gb: float | None = None,
                             tags: dict[str, str] | None = None, properties: dict[str, str] | None = None,
                             description: str | None = None, location: str | None = None,
                             auth_enabled: bool | None = None, port: int | None = None, **azure: Any):
        """ACI's settings; ``ssl_*``, ``dns_name_label``, ``enable_app_insights``… are recorded, not used."""
        return _deployment_config("ACI", False, auth_enabled, tags, description, port, 60.0,
                                  {"cpu_cores": cpu_cores, "memory_gb": memory_gb, "location": location, **azure})


class AksWebservice(LocalWebservice):
    """Azure Kubernetes Service's surface on a local service (key auth on by default, as in AKS)."""

    @staticmethod
    def deploy_configuration(autoscale_enabled: bool | None = None, autoscale_min_replicas: int | None = None,
                             autoscale_max_replicas: int | None = None, cpu_cores: float | None = None,
                             memory_gb: float | None = None, tags: dict[str, str] | None = None,
                             description: str | None = None, auth_enabled: bool | None = None,
                             scoring_timeout_ms: int | None = None, port: int | None = None, **azure: Any):
        timeout = scoring_timeout_ms / 1000 if scoring_timeout_ms else 60.0
        return _deployment_config("AKS", True, auth_enabled, tags, description, port, timeout,
                                  {"cpu_cores": cpu_cores, "memory_gb": memory_gb, "autoscale_enabled": autoscale_enabled,
                                   "autoscale_min_replicas": autoscale_min_replicas,
                                   "autoscale_max_replicas": autoscale_max_replicas, **azure})


__all__ = ["AciWebservice", "AksWebservice", "ContainerImage", "ContainerImageConfig", "Image", "inference_config_of"]
