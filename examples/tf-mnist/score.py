"""Scoring script of the tf-mnist service: init() loads the SavedModel, run() answers the digits of the images sent.

Request: {"data": [[784 pixels in [0, 1]], ...]}; response: [digit, ...].
"""
import json
import os

import numpy as np
import tensorflow as tf


def init():
    global model
    # AZUREML_MODEL_DIR: the folder holding the registered model (here the SavedModel folder "model")
    model = tf.saved_model.load(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'model'))


def run(raw_data):
    data = np.array(json.loads(raw_data)['data'], dtype=np.float32)
    digits = model.signatures['serving_default'](images=tf.constant(data))['digit']
    return digits.numpy().tolist()
