"""Deploying models as local web services (Azure ML's ``Model.deploy`` with ``LocalWebservice``).

    inference = InferenceConfig(entry_script="score.py", source_directory="./serve", environment=env)
    service = Model.deploy(ws, "digits-svc", [model], inference,
                           LocalWebservice.deploy_configuration(port=8890, auth_enabled=True))
    service = Model.deploy(ws, "digits-svc", [model])             # no code: served from the model's framework
    service.wait_for_deployment(show_output=True); service.run(json.dumps({"data": [[...]]}))
    service.get_keys(); service.regen_key("Primary"); service.get_logs(); service.update(models=[v3]); service.delete()

A service is a process of its own (``runyard.deploy.server``), detached from the deploying one, with its state in
``WORKSPACE/services/<name>/``: ``service.json`` (what it serves), ``keys.json``, ``models/`` (the models' files),
``service.log`` and ``pid``.
"""
from runyard.deploy.images import AciWebservice, AksWebservice, ContainerImage, Image
from runyard.deploy.service import (
    SERVICE_PACKAGES,
    InferenceConfig,
    LocalWebservice,
    LocalWebserviceDeploymentConfiguration,
    Webservice,
    deploy,
    deploy_image,
    framework_environment,
    services_root,
)
from runyard.deploy.package import ModelPackage, package
from runyard.errors import DeploymentError


__all__ = ["AciWebservice", "AksWebservice", "ContainerImage", "DeploymentError", "Image", "InferenceConfig",
           "LocalWebservice", "LocalWebserviceDeploymentConfiguration", "ModelPackage", "SERVICE_PACKAGES", "Webservice",
           "deploy", "deploy_image", "framework_environment", "package", "services_root"]
