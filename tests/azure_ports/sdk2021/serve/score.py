import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'model.pkl'))


def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    return model.predict(data).tolist()
