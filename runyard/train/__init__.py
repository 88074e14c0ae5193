"""Estimators: run configurations in Azure ML v1's ``azureml.train.estimator`` shape."""
