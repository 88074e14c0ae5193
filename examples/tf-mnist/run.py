"""tf-mnist: train a TensorFlow network on MNIST, register it, deploy it with a scoring script and without one.

    python examples/tf-mnist/run.py            # the full set, 20 epochs (final accuracy ~0.97)
    python examples/tf-mnist/run.py --quick    # 10,000 images, 5 epochs: what CI runs
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
import utils  # noqa: E402 - examples/common/utils.py: MNIST without downloading

from runyard import Experiment, InferenceConfig, LocalWebservice, Model, ResourceConfiguration, Workspace  # noqa: E402
from runyard.train.dnn import TensorFlow  # noqa: E402

args = utils.walkthrough_args("tf-mnist", __doc__)
work = args.workdir

# 1. The data: MNIST as the four idx files, uploaded to the workspace's default datastore.
ws = Workspace.from_config()
ds, data_folder = utils.mnist_on_datastore(ws, args)  # MNIST as idx files, uploaded

# 2. Train: a TensorFlow estimator with the data folder mounted.
script_folder = utils.script_folder(work / "tf-mnist", HERE / "tf_mnist.py")
script_params = {
    "--data-folder": ds.path("mnist").as_mount(),
    "--batch-size": 50,
    "--first-layer-neurons": 300,
    "--second-layer-neurons": 100,
    "--learning-rate": 0.01,
    "--epochs": 5 if args.quick else 20,
}
est = TensorFlow(source_directory=str(script_folder), script_params=script_params, compute_target="local",
                 entry_script="tf_mnist.py")
run = Experiment(workspace=ws, name="tf-mnist").submit(est)
run.wait_for_completion(show_output=True)
metrics = run.get_metrics()
print("final accuracy:", metrics["final_acc"])
print("files:", run.get_file_names())

# 3. Register the SavedModel, with the framework and version it was trained with.
tf_version = run.get_environment().python.framework["version"]
model = run.register_model(model_name="tf-dnn-mnist", model_path="outputs/model",
                           model_framework=Model.Framework.TENSORFLOW, model_framework_version=tf_version,
                           resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5),
                           tags={"area": "mnist", "type": "dnn"}, description=f"final accuracy {metrics['final_acc']:.4f}")
print("registered", model.name, "version", model.version)
downloaded = Path(model.download(target_dir=str(work / "downloaded"), exist_ok=True))
print("downloaded:", sorted(p.relative_to(downloaded).as_posix() for p in downloaded.rglob("*") if p.is_file()))

# 4. Deploy with a scoring script (score.py reads AZUREML_MODEL_DIR) and call it with test images.
_, _, X_test, y_test = utils.load_mnist(data_folder)
sample = slice(0, 30)
request = json.dumps({"data": X_test[sample].tolist()})
inference_config = InferenceConfig(entry_script="score.py", source_directory=str(HERE),
                                   environment=run.get_environment())
service = Model.deploy(ws, "tf-mnist-svc", [model], inference_config,
                       LocalWebservice.deploy_configuration(), overwrite=True)
service.wait_for_deployment(show_output=True)
answer = service.run(input_data=request)
print("scored:  ", answer)
print("expected:", y_test[sample].tolist())
print("service accuracy on 30 test images:", sum(a == b for a, b in zip(answer, y_test[sample])) / 30)
service.delete()

# 5. The same model without a scoring script: runyard serves the SavedModel's serving signature.
nocode = Model.deploy(ws, "tf-mnist-nocode", [model], overwrite=True)
nocode.wait_for_deployment(show_output=True)
answer = nocode.run(input_data=request)
print("no-code: ", answer)
print("no-code accuracy on 30 test images:", sum(a == b for a, b in zip(answer, y_test[sample])) / 30)
nocode.delete()
