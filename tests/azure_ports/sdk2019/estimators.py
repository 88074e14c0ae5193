# Train, tune and deploy a scikit-learn model with Azure ML (2019): SKLearn estimator, HyperDrive, ACI.
import json
import os

from sklearn.datasets import load_iris

import azureml.core
from azureml.core import Workspace, Experiment
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.image import ContainerImage
from azureml.core.model import Model
from azureml.core.webservice import AciWebservice, Webservice
from azureml.train.sklearn import SKLearn
from azureml.train.hyperdrive import RandomParameterSampling, BanditPolicy, HyperDriveRunConfig, PrimaryMetricGoal
from azureml.train.hyperdrive import choice
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)
ws = Workspace.from_config()
print(ws.name, ws.resource_group, ws.location, ws.subscription_id, sep='\n')

cluster_name = "cpucluster"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print('Found existing compute target')
except ComputeTargetException:
    print('Creating a new compute target...')
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', max_nodes=2,
                                                           idle_seconds_before_scaledown=1800,
                                                           vm_priority='lowpriority')
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)
print(ws.compute_targets)

experiment = Experiment(workspace=ws, name='sklearn-iris-2019')

estimator = SKLearn(source_directory='sklearn_src',
                    script_params={'--kernel': 'linear', '--penalty': 1.0},
                    compute_target=compute_target,
                    entry_script='train_iris.py',
                    framework_version='0.20.3')
run = experiment.submit(estimator)
run.wait_for_completion(show_output=True)
print(run.get_metrics())

param_sampling = RandomParameterSampling({
    '--kernel': choice('linear', 'rbf', 'poly', 'sigmoid'),
    '--penalty': choice(0.5, 1, 1.5)
})
early_termination_policy = BanditPolicy(evaluation_interval=2, slack_factor=0.1)
hyperdrive_run_config = HyperDriveRunConfig(estimator=estimator,
                                            hyperparameter_sampling=param_sampling,
                                            policy=early_termination_policy,
                                            primary_metric_name='Accuracy',
                                            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                                            max_total_runs=4,
                                            max_concurrent_runs=2)
hyperdrive_run = experiment.submit(hyperdrive_run_config)
RunDetails(hyperdrive_run).show()
hyperdrive_run.wait_for_completion(show_output=True)

best_run = hyperdrive_run.get_best_run_by_primary_metric()
print(best_run.get_details()['runDefinition']['arguments'])
print(best_run.get_file_names())
model = best_run.register_model(model_name='sklearn-iris', model_path='outputs/model.joblib')
print(model.name, model.id, model.version, sep='\t')
print(ws.models)
for m in Model.list(ws):
    print(m.name, m.version)

myenv = CondaDependencies.create(conda_packages=['scikit-learn', 'numpy'], pip_packages=['azureml-defaults'])
with open("myenv.yml", "w") as f:
    f.write(myenv.serialize_to_string())

image_config = ContainerImage.image_configuration(execution_script="score.py",
                                                  runtime="python",
                                                  conda_file="myenv.yml")
aciconfig = AciWebservice.deploy_configuration(cpu_cores=1,
                                               memory_gb=1,
                                               tags={'data': 'iris', 'method': 'sklearn'},
                                               description='Predict iris species')
service = Webservice.deploy_from_model(workspace=ws,
                                       name='sklearn-iris-svc',
                                       deployment_config=aciconfig,
                                       models=[model],
                                       image_config=image_config)
service.wait_for_deployment(show_output=True)
print(service.scoring_uri)
print(ws.webservices)

X, y = load_iris(return_X_y=True)
test_samples = json.dumps({"data": X[[0, 60, 120]].tolist()})
prediction = service.run(input_data=test_samples)
print('prediction:', prediction)

model.download(target_dir=os.getcwd(), exists_ok=True)
print(os.path.isfile('model.joblib'))
service.delete()
