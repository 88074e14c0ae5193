# Train and deploy with a curated environment (Azure ML 2021+): ScriptRunConfig, Environment.get, Model.deploy.
import json

from sklearn.datasets import load_digits

from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig, Model
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.core.runconfig import DockerConfiguration
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice
from azureml.core.resource_configuration import ResourceConfiguration

ws = Workspace.from_config()

cpu_cluster_name = "cpu-cluster"
try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print('Found existing cluster, use it.')
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', max_nodes=4)
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
cpu_cluster.wait_for_completion(show_output=True)

curated_env_name = 'AzureML-sklearn-1.0-ubuntu20.04-py38-cpu'
sklearn_env = Environment.get(workspace=ws, name=curated_env_name)
print([name for name in Environment.list(workspace=ws) if name.startswith('AzureML-sklearn')])
env = sklearn_env.clone('digits-env')
env.environment_variables = {'DIGITS_SEED': '7'}

src = ScriptRunConfig(source_directory='src',
                      script='train.py',
                      arguments=['--C', 10.0],
                      compute_target=cpu_cluster,
                      environment=env,
                      docker_runtime_config=DockerConfiguration(use_docker=True))

run = Experiment(workspace=ws, name='digits-2021').submit(src)
run.wait_for_completion(show_output=True)
print(run.get_metrics())
print(run.get_file_names())

run.download_file('outputs/model.pkl', output_file_path='model.pkl')
model = Model.register(workspace=ws,
                       model_name='digits-svc',
                       model_path='model.pkl',
                       model_framework=Model.Framework.SCIKITLEARN,
                       model_framework_version='1.0',
                       resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5),
                       description='SVC on sklearn digits',
                       tags={'area': 'digits', 'type': 'classification'})
print(model.name, model.version)

inference_config = InferenceConfig(entry_script='score.py', source_directory='serve', environment=env)
aci_config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
service = Model.deploy(workspace=ws, name='digits-2021-svc', models=[model],
                       inference_config=inference_config, deployment_config=aci_config, overwrite=True)
service.wait_for_deployment(show_output=True)
print(service.state, service.scoring_uri)

digits = load_digits()
answer = service.run(json.dumps({'data': digits.data[:5].tolist()}))
print('predicted', answer, 'expected', digits.target[:5].tolist())
primary, secondary = service.get_keys()
print(len(primary) > 0)
service.delete()
